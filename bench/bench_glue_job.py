"""The ETL job's transform path against two baselines, on the same synthetic input, in one run.

Generates --rows order rows as CSV (--files files, fixed seed), then times, warm (the median of
--repeat interleaved runs of each):
  job         the job's own write_table: read with the catalog schema, type and validate, flag
              duplicates (order_id), enrich (ingest time, source, run id, date parts, lookup
              join), write Parquet/snappy partitioned by year/month/day/run_id, count rows per
              file and output partition, write the quarantine
  spark copy  plain Spark: read the CSV (same schema, all strings), write Parquet/snappy
  floor       the job's per-row work alone: its read, casts and checks, enrichment (source URI,
              ingest time, lookup join) and a plain Parquet/snappy write; no dedup,
              partitioning, counts or quarantine. Its ratio to the copy is a floor for the job's.
  duckdb      DuckDB doing the job's transform: cast, dedup, enrich, partitioned Parquet write
Then, each in its own process (a Spark master is fixed per JVM):
  scaling     job and copy on local[1] and local[2], rows on ONE day and spread over 28 days:
              scaling_vs_copy = (job[1] / job[2]) / (copy[1] / copy[2]); 1.0 = the job uses a
              second core as well as the plain copy does
  driver      one job run (etl_job.main, --storage local, against the emulator) of 1,000 small
              files with every AWS call delayed 20 ms (a botocore before-send hook: the round
              trip the in-process emulator lacks); driver_ms_per_file = the run's time outside
              its Spark phases (RunLog.driver_ms) / files
Last line: ratio_vs_spark_copy=X.XX ratio_vs_duckdb=Y.YY rows=N scaling_vs_copy=S.SS
           scaling_vs_copy_28d=T.TT driver_ms_per_file=D.D  (ratio = job time / other time)

    .venv/bin/python bench/bench_glue_job.py [--rows 1000000] [--files 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue"), str(ROOT / "functions" / "ledger_layer")]

import duckdb  # noqa: E402

from sluice.aws.glue_spark import spark_session  # noqa: E402
from sluice_glue import raw_files, transforms  # noqa: E402
from sluice_glue.datasets import DatasetSettings  # noqa: E402
from sluice_glue.output import OutputRoots, RawRows, RunFiles, WritePlan  # noqa: E402
from sluice_glue.sizing import RunSize  # noqa: E402
from sluice_glue.table_write import write_table  # noqa: E402

COLUMNS = [("order_id", "string"), ("customer_id", "string"), ("country", "string"),
           ("amount", "double"), ("currency", "string"), ("event_time", "timestamp")]
TABLE = {"Parameters": {"classification": "csv", "delimiter": ",", "skip.header.line.count": "1"},
         "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                               "SerdeInfo": {"Parameters": {"field.delim": ","}}}}
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "US", "CA", "BR", "JP", "AU"]


def generate(folder: Path, rows: int, files: int = 4, days: int = 28) -> list[str]:
    rng = random.Random(42)
    paths = []
    per_file = rows // files
    for f in range(files):
        path = folder / f"orders-{f}.csv"
        with path.open("w") as out:
            out.write("order_id,customer_id,country,amount,currency,event_time\n")
            for i in range(per_file):
                n = f * per_file + i
                order = n if rng.random() > 0.01 else n - 1  # ~1% duplicates
                stamp = f"2026-11-{1 + n % days:02d}T{n % 24:02d}:{n % 60:02d}:00Z"
                out.write(f"o-{order:09d},c-{rng.randrange(50000):06d},{rng.choice(COUNTRIES)},"
                          f"{rng.uniform(1, 500):.2f},EUR,{stamp}\n")
        paths.append(str(path))
    (folder / "countries.csv").write_text("country,region\n" + "".join(
        f"{c},{'EMEA' if c in COUNTRIES[:5] else 'AMER' if c in ('US', 'CA', 'BR') else 'APAC'}\n"
        for c in COUNTRIES))
    return paths


def read_inputs(spark, paths: list[str], lookup_path: str):
    """The raw rows with their file index, as the job reads them, and the lookup table."""
    index = {f"file://{p}": i for i, p in enumerate(paths)}
    routes = [raw_files.FileRoute(i, p, "spark") for i, p in enumerate(paths)]
    headers = {i: [n for n, _ in COLUMNS] for i in range(len(paths))}
    raw = raw_files.read(spark, raw_files.layout(TABLE), COLUMNS, routes, headers,
                         lambda df: transforms.with_file_index(df, index))
    return raw, spark.read.option("header", True).csv(lookup_path)


def job_transform(spark, paths: list[str], lookup_path: str, out: str) -> None:
    """The job's own write_table: everything the job does with Spark for one table."""
    raw, lookup = read_inputs(spark, paths, lookup_path)
    settings = DatasetSettings("event_time", dedup_keys=("order_id",), lookup_key="country")
    size = RunSize.of(sum(Path(p).stat().st_size for p in paths), spark.sparkContext.defaultParallelism)
    output = write_table(spark, RawRows(raw, COLUMNS), RunFiles("run-bench", dict(enumerate(paths))),
                         WritePlan(settings, size, lookup), OutputRoots(out, f"{out}-quarantine"))
    assert sum(c.rows_in for c in output.counts.values()) > 0


def spark_copy(spark, paths: list[str], out: str) -> None:
    """The files' own six columns, as strings. (Reading them with the job's raw schema, which has
    one column more for malformed records, made every row a short row and this copy 3x slower:
    the ratios this bench printed before 2026-11-26 were against that slow copy.)"""
    schema = ", ".join(f"`{name}` string" for name, _ in COLUMNS)
    spark.read.schema(schema).option("header", True).csv(paths).write.mode(
        "overwrite").option("compression", "snappy").parquet(out)


def floor(spark, paths: list[str], lookup_path: str, out: str) -> None:
    """Every row is written with its `_bad_reason`: Spark would push a filter on it below the
    casts and compute them twice (the job filters after its cache, so it does not)."""
    raw, lookup = read_inputs(spark, paths, lookup_path)
    rows = transforms.typed(raw, COLUMNS, "event_time", ["event_time", "order_id"])
    transforms.enriched(rows, dict(enumerate(paths)), lookup, "country").drop("_file", "_raw").write.mode(
        "overwrite").option("compression", "snappy").parquet(out)


def duckdb_transform(paths: list[str], lookup_path: str, out: str) -> None:
    files = ", ".join(f"'{p}'" for p in paths)
    duckdb.sql(f"""
        COPY (
          WITH raw AS (SELECT *, filename AS source_file FROM read_csv([{files}], header=true,
                       all_varchar=true, filename=true)),
          typed AS (SELECT order_id, customer_id, country, TRY_CAST(amount AS DOUBLE) AS amount, currency,
                           TRY_CAST(event_time AS TIMESTAMP) AS event_time, source_file FROM raw),
          dedup AS (SELECT * FROM typed WHERE event_time IS NOT NULL AND order_id IS NOT NULL
                    QUALIFY row_number() OVER (PARTITION BY CAST(event_time AS DATE), order_id
                                               ORDER BY source_file) = 1)
          SELECT d.*, l.region, now() AS ingested_at, 'run-bench' AS run_id,
                 strftime(event_time, '%Y') AS year, strftime(event_time, '%m') AS month,
                 strftime(event_time, '%d') AS day
          FROM dedup d LEFT JOIN read_csv('{lookup_path}', header=true) l USING (country)
        ) TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (year, month, day, run_id),
                      OVERWRITE_OR_IGNORE true)""")


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def scaling_run(folder: str, kind: str, cores: int, repeat: int) -> None:
    """One configuration in this process: print the median seconds of `kind` on local[cores]."""
    from pyspark.sql import SparkSession

    SparkSession.builder.master(f"local[{cores}]").getOrCreate()  # spark_session() then reuses it
    spark = spark_session("sluice-bench-scaling")
    paths = sorted(str(p) for p in Path(folder).glob("orders-*.csv"))
    lookup = str(Path(folder) / "countries.csv")
    run = (lambda out: job_transform(spark, paths, lookup, out)) if kind == "job" else (
        lambda out: spark_copy(spark, paths, out))
    run(f"{folder}/warm-{kind}-{cores}")
    print(statistics.median(timed(run, f"{folder}/{kind}-{cores}-{n}") for n in range(repeat)))


def scaling(work: Path, rows: int, files: int, days: int, repeat: int) -> float:
    folder = work / f"days{days}"
    folder.mkdir()
    generate(folder, rows, files, days)
    took = {}
    for kind in ("job", "copy"):
        for cores in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--scaling-run", str(folder), kind, str(cores),
                                  str(repeat)], check=True, capture_output=True, text=True).stdout
            took[kind, cores] = float(out.strip().splitlines()[-1])
    print(f"{days} day(s): " + " ".join(f"{k}[{c}]={t:.2f}s" for (k, c), t in took.items()))
    shutil.rmtree(folder, ignore_errors=True)
    return (took["job", 1] / took["job", 2]) / (took["copy", 1] / took["copy", 2])


def driver_run(files: int, delay_s: float) -> None:
    """One job run of `files` small files against the emulator, every AWS call delayed."""
    import boto3
    import etl_job

    from ledger import FileRef, RunBudget, RunManifest, manifest_key
    from ledger.run_table import DynamoRunRecords
    from ledger.table import DynamoLedger
    from sluice.aws.corrections import correct_moto
    from sluice.aws.emulator import Emulator
    from sluice.stack.template import SamApp
    from sluice_glue import catalog, runlog
    from tests.conftest import create_ledger_table

    correct_moto()
    with Emulator() as aws:
        aws.point_process_here()
        s3, glue = aws.client("s3"), aws.client("glue")
        for bucket in ("raw", "processed", "artifacts"):
            s3.create_bucket(Bucket=bucket)
        for database in ("raw_db", "processed_db"):
            glue.create_database(DatabaseInput={"Name": database})
        glue.create_table(DatabaseName="raw_db", TableInput=catalog.table_input(
            "orders", "s3://raw/orders/", COLUMNS, [], "csv", {"skip.header.line.count": "1"}))
        name = create_ledger_table(aws, SamApp.load(), "ledger")
        ledger = DynamoLedger(aws.resource("dynamodb").Table(name))
        header = ",".join(n for n, _ in COLUMNS) + "\n"
        for f in range(files):
            body = (header + f"o-{f},c-1,DE,1.5,EUR,2026-11-24T01:00:00Z\n").encode()
            etag = s3.put_object(Bucket="raw", Key=f"orders/f{f:05d}.csv", Body=body)["ETag"].strip('"')
            ledger.record_pending(FileRef("raw", f"orders/f{f:05d}.csv", etag, len(body)))
        refs = ledger.claim_pending("run-drv", RunBudget(files, 10**12))
        runs = DynamoRunRecords(aws.resource("dynamodb").Table(name))
        runs.open("run-drv")
        runs.starting("run-drv")  # as StartJobFunction leaves it: the job's fence lets it begin
        s3.put_object(Bucket="artifacts", Key=manifest_key("run-drv"),
                      Body=RunManifest("run-drv", "2026-11-25T00:00:00Z", refs).to_json().encode())
        spark = spark_session("sluice-bench-driver")
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-send", lambda **_: time.sleep(delay_s))
        logs: list[float] = []
        original = runlog.RunLog.event
        phases = logging.StreamHandler(sys.stderr)  # the run's phases, one JSON line each
        runlog.LOGGER.addHandler(phases)
        runlog.LOGGER.setLevel(logging.INFO)

        def event(self, name, level=20, **fields):  # the run's own measure of its driver time
            if name == "done":
                logs.append(fields["driver_ms"])
            original(self, name, level, **fields)
        runlog.RunLog.event = event
        summary = etl_job.main(["etl_job.py", "--run_id", "run-drv", "--storage", "local",
                                "--manifest_uri", f"s3://artifacts/{manifest_key('run-drv')}",
                                "--ledger_table", "ledger", "--raw_database", "raw_db",
                                "--processed_database", "processed_db", "--processed_bucket", "processed",
                                "--artifacts_bucket", "artifacts"], spark=spark)
        assert summary.to_dict()["totals"]["files"] == files
        print(logs[-1] / files)


def main() -> None:
    if sys.argv[1:2] == ["--scaling-run"]:
        scaling_run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return
    if sys.argv[1:2] == ["--driver-run"]:
        driver_run(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4, help="input files (one run reads them all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (median)")
    parser.add_argument("--scaling-repeat", type=int, default=1,
                        help="timed runs per scaling configuration")
    parser.add_argument("--driver-files", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    try:
        paths = generate(work, args.rows, args.files)
        lookup = str(work / "countries.csv")
        spark = spark_session("sluice-bench")
        job_transform(spark, paths, lookup, str(work / "warm-job"))  # warm the JVM and the caches
        spark_copy(spark, paths, str(work / "warm-copy"))
        floor(spark, paths, lookup, str(work / "warm-floor"))
        times: dict[str, list[float]] = {"job": [], "copy": [], "floor": [], "duck": []}
        for n in range(args.repeat):  # interleaved, so a slow spell of the machine hits all four
            times["job"].append(timed(job_transform, spark, paths, lookup, str(work / f"job{n}")))
            times["copy"].append(timed(spark_copy, spark, paths, str(work / f"copy{n}")))
            times["floor"].append(timed(floor, spark, paths, lookup, str(work / f"floor{n}")))
            times["duck"].append(timed(duckdb_transform, paths, lookup, str(work / f"duck{n}")))
        spark.stop()
        for name, each in times.items():
            print(f"{name}: {' '.join(f'{t:.2f}' for t in each)} s")
        job, copy, least, duck = (statistics.median(times[k]) for k in ("job", "copy", "floor", "duck"))
        print(f"rows={args.rows} files={args.files} job={job:.2f}s spark_copy={copy:.2f}s "
              f"floor={least:.2f}s duckdb={duck:.2f}s (local[2], warm, median of {args.repeat})")
        print(f"floor_vs_spark_copy={least / copy:.2f} (read, type, validate, enrich; no dedup, "
              "partitioning or counts)")
        one_day = scaling(work, args.rows, args.files, 1, args.scaling_repeat)
        spread = scaling(work, args.rows, args.files, 28, args.scaling_repeat)
        driver = float(subprocess.run(
            [sys.executable, __file__, "--driver-run", str(args.driver_files), "0.02"],
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        print(f"ratio_vs_spark_copy={job / copy:.2f} ratio_vs_duckdb={job / duck:.2f} rows={args.rows} "
              f"scaling_vs_copy={one_day:.2f} scaling_vs_copy_28d={spread:.2f} "
              f"driver_ms_per_file={driver:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
