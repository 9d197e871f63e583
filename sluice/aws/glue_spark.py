"""The local Spark a Glue job runs on: one SparkSession (`local[2]`), configured as a Glue 5.0
job's is where it matters to the job (UTC session time zone) and quiet where Glue's console would
be (no UI, no progress bars, no start-up warnings that say nothing about a run). The job runner
keeps one warm between runs (sluice.aws.glue_jobs); the Glue job's tests and benchmarks use it too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

# Spark's start-up WARN lines say nothing about a run: the hostname resolving to a loopback
# address (SPARK_LOCAL_IP answers it) and the missing native-hadoop library (the Java fallback is
# what local Spark always uses). Everything else at WARN or above still shows until the session
# is up; then the level is ERROR, so a failing job's errors still reach the timeline. See
# https://spark.apache.org/docs/3.5.0/configuration.html#environment-variables and
# #configuring-logging (log4j2 properties, passed through the driver's Java options).
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.nativeloader.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativeloader.level = error
"""


def _log4j2_file() -> Path:
    path = Path(tempfile.gettempdir()) / f"sluice-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != LOG4J2:
        path.write_text(LOG4J2)
    return path


def spark_session(app_name: str = "sluice-local") -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM the builder launches
    session = (SparkSession.builder.master("local[2]").appName(app_name)
            .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_log4j2_file()}")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "2g")
            .getOrCreate())
    # getOrCreate may hand back a live session (a process that keeps one JVM: the tests): the
    # settings a caller changed since (a test's shuffle width) are set back, so each caller starts
    # from these.
    session.conf.set("spark.sql.shuffle.partitions", "4")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    session.sparkContext.setLogLevel("ERROR")
    return session
