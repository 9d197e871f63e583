"""`sluice`: the local runtime's command line.

    sluice up [--port N] [--fault NAME[=N]]... [--fresh]
                                                start the pipeline in the foreground (Ctrl-C stops it;
                                                its state is saved and the next `up` resumes it)
    sluice demo [--fault NAME[=N]]...           up + ingest samples/ + wait for the email + show the
                                                output (make run)
    sluice ingest FILE... [--key KEY]   upload to the raw bucket of the running pipeline
    sluice status [--json]      ledger counts by state, job runs, queue and DLQ depths, each alarm's
                                state, stuck runs and files, denied deliveries (--json adds the IAM
                                audit)
    sluice iam                  per principal: the calls made (action, resource) and the grants
                                never used; every denied call or delivery
    sluice datasets             each table: its effective settings, files, rows and output
    sluice query SQL [--json | --csv]
                                query the processed tables as the analysts' role (Athena's
                                workgroup and IAM, locally): see `sluice query --help`
    sluice outbox               the notification emails written so far
    sluice redrive              move messages from the ingest DLQ back to the ingest queue, and
                                FAILED files back to PENDING
    sluice down                 stop the pipeline started by `sluice up`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from sluice import ROOT, STATE_DIR, views
from sluice.aws.faults import FAULTS, Faults
from sluice.aws.sns import read_outbox
from sluice.running import audit, clients, running
from sluice_glue.datasets import SettingsError

# The runtime's modules (the SAM translator, moto's server, Spark) are imported by the verbs that
# use them: `sluice query` answers within a second or two without them.
SAMPLES = ROOT / "samples"
SAMPLE_DATASETS = ("orders", "orders_api", "sensors", "clicks")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["query"]:
        from sluice.query import main as query

        return query(argv[1:])
    parser = argparse.ArgumentParser(prog="sluice", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the pipeline in the foreground")
    up.add_argument("--port", type=int, default=int(os.environ.get("SLUICE_PORT", "4566")))
    up.add_argument("--fresh", action="store_true",
                    help="start empty instead of from the state saved by the last `up` (.sluice/snapshot)")
    demo = commands.add_parser("demo", help="run the samples through the whole pipeline")
    demo.add_argument("--port", type=int, default=None)
    for command in (up, demo):
        command.add_argument("--fault", action="append", default=[], metavar="NAME[=N]",
                             help="inject a fault N times (default 1); names: " + ", ".join(FAULTS))
    demo.add_argument("--timeout", type=float, default=300,
                      help="give up when nothing in the pipeline has moved for this many seconds")
    ingest = commands.add_parser("ingest", help="upload files to the raw bucket")
    ingest.add_argument("files", nargs="+", type=Path)
    ingest.add_argument("--key", help="object key (one file) or key prefix ending in / (several)")
    status = commands.add_parser("status", help="ledger, job runs, queues")
    status.add_argument("--json", action="store_true")
    commands.add_parser("iam", help="calls made and grants never used, per principal")
    commands.add_parser("datasets", help="each table's effective settings, files, rows and output")
    commands.add_parser("outbox", help="notification emails")
    commands.add_parser("redrive", help="ingest DLQ -> ingest queue; FAILED files -> PENDING",
                        description="Move the messages of the ingest DLQ back to the ingest queue, and "
                                    "reset the ledger's FAILED files to PENDING with their attempts at 0, "
                                    "for the sweeper or the next crawl to claim.")
    commands.add_parser("down", help="stop `sluice up`")
    commands.add_parser("query", help="query the processed tables as the analysts' role", add_help=False)
    add_estimate_parser(commands)
    args = parser.parse_args(argv)
    handler = {"up": cmd_up, "demo": cmd_demo, "ingest": cmd_ingest, "status": cmd_status,
               "outbox": cmd_outbox, "redrive": cmd_redrive, "down": cmd_down, "iam": cmd_iam,
               "datasets": cmd_datasets, "estimate": cmd_estimate}[args.command]
    from sluice.aws.sqs_event_source import MappingRefused
    from sluice.stack.rules import CreateRuleError

    try:
        return handler(args)
    except (CreateRuleError, SettingsError, MappingRefused) as refusal:
        # What AWS (or the job's settings check) would refuse: the message names the resource or
        # dataset and the rule; a traceback would only hide it.
        print(f"sluice {args.command}: {refusal}", file=sys.stderr)
        return 2


# --- the runtime in this process ---------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    from sluice.runtime import Runtime

    stopping = {"now": False}

    def stop(*_: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if args.fresh:
        shutil.rmtree(STATE_DIR / "snapshot", ignore_errors=True)
    with Runtime(port=args.port, faults=Faults.parse(args.fault), persist=True) as runtime:
        outputs = runtime.stack.outputs
        print(f"\nSluice is up. Endpoint: {runtime.aws.endpoint}\n"
              f"  aws --endpoint-url {runtime.aws.endpoint} s3 cp FILE s3://{outputs['RawBucketName']}/orders/\n"
              f"  sluice ingest FILE --key orders/    sluice status    sluice down\n", flush=True)
        while not stopping["now"]:
            time.sleep(0.2)
    print("Sluice stopped.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sluice.runtime import Denied, Runtime

    files = [p for d in SAMPLE_DATASETS for p in sorted((SAMPLES / d).rglob("*")) if p.is_file()]
    with Runtime(port=args.port, faults=Faults.parse(args.fault)) as runtime:
        for job in runtime.jobs:
            job.ready.wait(timeout=900)  # a warm Spark session before the first run (slow when busy)
        for path in files:
            runtime.ingest(path, path.relative_to(SAMPLES).as_posix())
        try:
            status = runtime.wait_until_settled(files=len(files), stall_s=args.timeout)
        except Denied as denied:  # at the first one: a refused call may be retried for minutes
            print(f"\nFAILED: {denied}", file=sys.stderr)
            return 1
        except TimeoutError as error:
            print(f"\nFAILED: {error}", file=sys.stderr)
            views.denials(runtime.status())  # a denial is the likeliest reason it never settled
            return 1
        queried = views.demo_outcome(runtime, status)
        ledger = status["ledger"]
        if views.denials(status) or not queried:
            return 1
        if ledger["FAILED"] or ledger["DONE"] + ledger["SKIPPED"] < len(files):
            print(f"\nFAILED: not every file was processed: {ledger}", file=sys.stderr)
            return 1
        if status["emails_per_run"]["missing"] or status["emails_per_run"]["duplicated"]:
            print(f"\nFAILED: each run gets one email: {status['emails_per_run']}", file=sys.stderr)
            return 1
    return 0


# --- talking to a runtime started elsewhere ----------------------------------------------------

def cmd_status(args: argparse.Namespace) -> int:
    from sluice.status import collect_status

    state = running()
    client, resource = clients(state)
    status = collect_status(client, resource, state["outputs"], state["endpoint"], Path(state["outbox"]),
                            state.get("stuck_after_s", 900), audit())
    if args.json:
        print(json.dumps(status))
        return 0
    for line in views.status_lines(status):
        print(line)
    return 0


def cmd_iam(args: argparse.Namespace) -> int:
    running()
    found = audit()
    for line in views.iam_lines(found):
        print(line)
    return 1 if found.get("denied") else 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from sluice.datasets_report import dataset_reports, render

    state = running()
    print(render(dataset_reports(*clients(state), state["outputs"])))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    state = running()
    client, _ = clients(state)
    bucket = state["outputs"]["RawBucketName"]
    for path in args.files:
        one_key = args.key and not args.key.endswith("/")
        key = args.key if one_key else f"{args.key or ''}{path.name}"
        client("s3").upload_file(str(path), bucket, key)
        print(f"s3://{bucket}/{key}")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    for mail in read_outbox(Path(running()["outbox"])):
        print(views.email_text(mail))
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from sluice.status import redrive

    state = running()
    moved = redrive(*clients(state), state["outputs"])
    print(f"redrove {moved['messages']} message(s) from the ingest DLQ; "
          f"{moved['failed_files']} FAILED file(s) back to PENDING")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    os.kill(running()["pid"], signal.SIGTERM)
    print("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- sluice estimate: no runtime, only the pipeline's rules and AWS's prices ------------------------

def add_estimate_parser(commands: argparse._SubParsersAction) -> None:
    estimate = commands.add_parser(
        "estimate", help="a month on AWS for a workload: cost per service, put->email latency, growth",
        description="Run a workload through the pipeline's own batching rules (StartCrawlerFunction's "
                    "pacing, StartJobFunction's RunPlanner) with a samconfig.toml environment's "
                    "parameters, and price what AWS would bill (sluice/prices.toml). Also at 10x and 100x.")
    rate = estimate.add_mutually_exclusive_group(required=True)
    rate.add_argument("--files-per-hour", type=float)
    rate.add_argument("--files-per-day", type=float)
    estimate.add_argument("--mean-size", type=int, default=20_000, help="mean file size in bytes")
    estimate.add_argument("--datasets", type=int, default=1)
    estimate.add_argument("--days-kept", type=int, default=30, help="days raw and processed data are kept")
    estimate.add_argument("--gzip", action="store_true", help="files are .gz")
    estimate.add_argument("--env", default="default",
                          help="samconfig.toml environment (default, prod, local)")
    estimate.add_argument("--no-growth", action="store_true", help="skip the 10x and 100x lines")


def cmd_estimate(args: argparse.Namespace) -> int:
    from sluice.estimate import Settings, Workload
    from sluice.estimate_report import estimate, growth, load_prices, render
    from sluice.stack.resolve import local_parameters

    per_hour = args.files_per_hour if args.files_per_hour is not None else args.files_per_day / 24
    if per_hour <= 0 or args.mean_size <= 0 or args.datasets <= 0 or args.days_kept <= 0:
        print("sluice estimate: rates, sizes, datasets and days must be positive", file=sys.stderr)
        return 2
    settings = Settings.of(local_parameters(env=args.env))
    prices = load_prices()
    workload = Workload(per_hour, args.mean_size, args.datasets, args.days_kept, args.gzip)
    base = estimate(workload, settings, prices)
    print(render(base, settings, args.env, prices["checked"]))
    if not args.no_growth:
        print(growth(base, [estimate(workload.scaled(f), settings, prices) for f in (10, 100)]))
    return 0
