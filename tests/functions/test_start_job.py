"""StartJobFunction against the emulator: runs own disjoint files, and a failed or refused run
gives every file back."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import boto3
import pytest
from moto.moto_api import state_manager

from ledger import (
    FileRef,
    FileSummary,
    ReturnedFile,
    RowCounts,
    RunBudget,
    RunManifest,
    RunSummary,
    manifest_key,
    summary_key,
)
from ledger.outputs import PartitionOutput, TableOutputs, record_outputs
from ledger.run_table import DynamoRunRecords
from ledger.table import DynamoLedger
from sluice import ROOT
from sluice.aws import glue_crawler as crawler
from sluice.aws.awslambda import FakeContext, load_handler
from sluice.aws.glue_jobs import hold_job_runs_in_starting
from tests.functions.conftest import ENV, RAW_BUCKET, event

from notifier import NotificationFailed  # isort: skip  (functions/start_job is on sys.path)
from run_summary import plain  # isort: skip

SETTINGS = ENV["StartJobFunction"]


@pytest.fixture
def ledger(stack) -> DynamoLedger:
    return DynamoLedger(stack.resource("dynamodb").Table(SETTINGS["LEDGER_TABLE"]))


def _pending(ledger: DynamoLedger, n: int, prefix: str = "orders/f", crawled: bool = True) -> list[FileRef]:
    """n files PENDING and, unless `crawled` is False, catalogued by a crawl that then succeeded."""
    refs = [FileRef(RAW_BUCKET, f"{prefix}{i:03}.csv", f"etag{prefix}{i}", 100) for i in range(n)]
    for ref in refs:
        ledger.record_pending(ref)
    if crawled:
        _crawl()
    return refs


def _crawl(succeeded: bool = True) -> None:
    glue = boto3.client("glue")
    time.sleep(0.002)  # the crawl begins after the files were created, to the millisecond
    glue.start_crawler(Name=SETTINGS["CRAWLER_NAME"])
    crawler.finish(SETTINGS["CRAWLER_NAME"], succeeded=succeeded)
    time.sleep(0.002)  # ... and files recorded next are created after it began (the ledger and
    # the crawl keep milliseconds; a file of the same millisecond counts as listed)


def _began(stack, run: dict) -> None:
    """What the job does first: pass the run record's fence (ledger/run_record.py)."""
    records = DynamoRunRecords(stack.resource("dynamodb").Table(SETTINGS["LEDGER_TABLE"]))
    assert records.begin(run["run_id"], run["job_run_id"])


def _job_runs(aws) -> list[dict]:
    return aws.client("glue").get_job_runs(JobName=SETTINGS["JOB_NAME"])["JobRuns"]


def test_crawler_succeeded_claims_pending_files_into_a_run(start_job, ledger, stack):
    _pending(ledger, 5)
    result = start_job(event("crawler-succeeded.json"))
    [run] = result["runs"]
    assert run["files"] == 5
    assert ledger.count_by_state()["CLAIMED"] == 5
    [job_run] = _job_runs(stack)
    assert job_run["Arguments"]["--run_id"] == run["run_id"]
    bucket, key = run["manifest_uri"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert len(manifest["files"]) == 5 and manifest["run_id"] == run["run_id"]


def test_nothing_pending_starts_no_run(start_job, stack):
    assert start_job(event("crawler-succeeded.json")) == {"runs": []}
    assert _job_runs(stack) == []


def test_run_size_is_capped_and_the_rest_get_their_own_runs(start_job, ledger, stack, monkeypatch):
    monkeypatch.setitem(SETTINGS, "MAX_FILES_PER_RUN", "4")
    _pending(ledger, 10)
    runs = start_job(event("crawler-succeeded.json"))["runs"]
    assert [r["files"] for r in runs] == [4, 4, 2]
    assert len(_job_runs(stack)) == 3


def test_events_for_another_crawler_or_job_claim_nothing(start_job, ledger, stack):
    _pending(ledger, 3)
    assert "ignored" in start_job(event("crawler-succeeded-other-crawler.json"))
    assert "email" in start_job(event("crawler-failed.json"))  # emailed; nothing claimed
    other_job = event("job-failed.json")
    other_job["detail"]["jobName"] = "someone-elses-job"
    assert "ignored" in start_job(other_job)
    assert ledger.count_by_state()["PENDING"] == 3
    assert _job_runs(stack) == []


def test_concurrent_invocations_claim_disjoint_files(start_job, ledger, stack, monkeypatch):
    monkeypatch.setitem(SETTINGS, "MAX_FILES_PER_RUN", "7")
    _pending(ledger, 60)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: start_job(event("crawler-succeeded.json")), range(3)))
    manifests = []
    s3 = stack.client("s3")
    for run in (r for result in results for r in result["runs"]):
        bucket, key = run["manifest_uri"].removeprefix("s3://").split("/", 1)
        manifests.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    claimed = [f["file_id"] for m in manifests for f in m["files"]]
    assert len(claimed) == len(set(claimed)) == 60
    assert ledger.count_by_state()["CLAIMED"] == 60


def test_concurrent_runs_exceeded_releases_the_claim(start_job, ledger, stack, aws_errors, monkeypatch):
    monkeypatch.setitem(SETTINGS, "MAX_FILES_PER_RUN", "3")
    _pending(ledger, 7)
    calls = aws_errors.fail(_job_glue_client(), "StartJobRun", "ConcurrentRunsExceededException",
                            times=1, after=1)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]  # the second run was refused
    assert calls == {"failed": 1, "total": 2}
    assert ledger.count_by_state()["CLAIMED"] == 3
    assert ledger.count_by_state()["PENDING"] == 4  # released, attempts untouched
    listed = stack.client("s3").list_objects_v2(Bucket=SETTINGS["ARTIFACTS_BUCKET"], Prefix="runs/")
    assert [o["Key"] for o in listed["Contents"]] == [f"runs/{run['run_id']}/manifest.json"]
    # the slot frees up: the next trigger takes the rest
    assert [r["files"] for r in start_job(event("job-succeeded.json"))["runs"]] == [3, 1]


def test_only_files_the_last_successful_crawl_catalogued_are_claimed(start_job, ledger, stack):
    catalogued = _pending(ledger, 2, prefix="orders/old")
    _pending(ledger, 3, prefix="orders/new", crawled=False)  # created after that crawl began
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    assert run["files"] == len(catalogued)
    assert ledger.count_by_state()["PENDING"] == 3  # they wait for the crawl that lists them
    _crawl(succeeded=False)  # a failed crawl catalogues nothing
    assert start_job(event("job-succeeded.json"))["runs"] == []
    _crawl()
    assert [r["files"] for r in start_job(event("job-succeeded.json"))["runs"]] == [3]


def test_a_job_at_its_limit_gets_no_claim_until_a_run_ends(start_job, ledger, stack, monkeypatch):
    monkeypatch.setitem(SETTINGS, "MAX_FILES_PER_RUN", "2")
    limit = stack.client("glue").get_job(JobName=SETTINGS["JOB_NAME"])["Job"]["ExecutionProperty"][
        "MaxConcurrentRuns"]
    _pending(ledger, 2 * limit + 3)
    released = []
    monkeypatch.setattr(DynamoLedger, "release_claim", lambda self, run_id, refs: released.append(run_id))
    hold_job_runs_in_starting()  # the runs stay under way
    try:
        runs = start_job(event("crawler-succeeded.json"))["runs"]
        assert start_job(event("crawler-succeeded.json")) == {"runs": []}
    finally:
        state_manager.unset_transition("glue::job_run")
    assert [r["files"] for r in runs] == [2] * limit
    assert released == []  # the job was full: nothing claimed only to be given back
    assert ledger.count_by_state()["PENDING"] == 3


def test_job_failure_returns_files_to_pending_with_an_attempt_counted(start_job, ledger, stack):
    refs = _pending(ledger, 4)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    _began(stack, run)
    failed = event("job-failed.json")
    failed["detail"]["jobRunId"] = run["job_run_id"]
    assert start_job(failed)["released"] == {"PENDING": 4, "FAILED": 0}
    items = [ledger.get(r.file_id) for r in refs]
    assert {(i["state"], i["attempts"]) for i in items} == {("PENDING", 1)}
    assert all(run["job_run_id"] in i["reason"] for i in items)


def test_a_job_run_that_ended_before_it_began_gives_its_files_back_with_no_attempt_counted(
        start_job, ledger, stack):
    """Glue can fail a run it accepted before the job starts ("The job exceeded its maximum
    allowed concurrent runs", "AWS Glue job run statuses"): the job wrote nothing."""
    refs = _pending(ledger, 3)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    failed = event("job-failed.json")
    failed["detail"]["jobRunId"] = run["job_run_id"]
    assert start_job(failed)["released"] == {"PENDING": 3}
    items = [ledger.get(r.file_id) for r in refs]
    assert {(i["state"], i["attempts"]) for i in items} == {("PENDING", 0)}
    records = DynamoRunRecords(stack.resource("dynamodb").Table(SETTINGS["LEDGER_TABLE"]))
    assert not records.begin(run["run_id"], run["job_run_id"])  # fenced off: a late start does nothing


def test_a_failed_run_leaves_no_output_behind_and_other_runs_keep_theirs(start_job, ledger, stack):
    env = ENV["StartJobFunction"]
    glue, s3 = stack.client("glue"), stack.client("s3")
    db, bucket = env["PROCESSED_DATABASE"], env["PROCESSED_BUCKET"]
    _pending(ledger, 2)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    glue.create_table(DatabaseName=db, TableInput={
        "Name": "orders",
        "PartitionKeys": [{"Name": "day", "Type": "string"}, {"Name": "run_id", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": "order_id", "Type": "string"}],
                              "Location": f"s3://{bucket}/orders/"}})
    for run_id in (run["run_id"], "run-earlier"):  # what the failing run wrote, and an older run's output
        location = f"s3://{bucket}/orders/day=24/run_id={run_id}/"
        glue.create_partition(DatabaseName=db, TableName="orders", PartitionInput={
            "Values": ["24", run_id], "StorageDescriptor": {"Location": location}})
        s3.put_object(Bucket=bucket, Key=f"orders/day=24/run_id={run_id}/part-0.parquet", Body=b"x")
        s3.put_object(Bucket=bucket, Key=f"_quarantine/orders/run_id={run_id}/part-0.json", Body=b"{}")
    # what the job records before it writes a table (ledger/outputs.py)
    failing = run["run_id"]
    record_outputs(s3, env["ARTIFACTS_BUCKET"], failing, TableOutputs("orders", [PartitionOutput(
        ["24", failing], f"orders/day=24/run_id={failing}/")], f"_quarantine/orders/run_id={failing}/"))
    _began(stack, run)
    failed = event("job-failed.json")
    failed["detail"]["jobRunId"] = run["job_run_id"]
    assert start_job(failed)["released"] == {"PENDING": 2, "FAILED": 0}
    left = [p["Values"][1] for p in glue.get_partitions(DatabaseName=db, TableName="orders")["Partitions"]]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["run-earlier"]
    assert keys == ["_quarantine/orders/run_id=run-earlier/part-0.json",
                    "orders/day=24/run_id=run-earlier/part-0.parquet"]


def test_files_fail_for_good_after_max_attempts(start_job, ledger, stack):
    [ref] = _pending(ledger, 1)
    for _ in range(int(SETTINGS["MAX_ATTEMPTS"])):
        [run] = start_job(event("crawler-succeeded.json"))["runs"]
        _began(stack, run)
        failed = event("job-failed.json")
        failed["detail"]["jobRunId"] = run["job_run_id"]
        start_job(failed)
    item = ledger.get(ref.file_id)
    assert (item["state"], item["attempts"]) == ("FAILED", 3)
    assert start_job(event("crawler-succeeded.json")) == {"runs": []}


def test_sweep_crawls_only_when_a_file_is_pending_long_enough(start_job, ledger, stack):
    glue = stack.client("glue")
    _pending(ledger, 3, prefix="orders/new")
    assert start_job(event("scheduled-sweep.json")) == {"ignored": "nothing pending for long"}
    assert glue.get_crawler(Name=SETTINGS["CRAWLER_NAME"])["Crawler"]["State"] == "READY"
    old = DynamoLedger(ledger.table, now=lambda: datetime.now(UTC) - timedelta(hours=1))
    _pending(old, 2, prefix="orders/old")
    assert start_job(event("scheduled-sweep.json")) == {"sweep": "crawler started"}
    assert start_job(event("scheduled-sweep.json")) == {"sweep": "crawler already running"}
    assert ledger.count_by_state()["PENDING"] == 5  # the crawl's success event starts the runs


def _inbox(stack, app) -> tuple:
    """NotifyRule as the template declares it (its pattern and input transformer), its target an SQS
    queue: each message is what the notification topic would be given."""
    rule = app.resources["NotifyRule"]["Properties"]
    sqs, events = stack.client("sqs"), stack.client("events")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {**rule["EventPattern"], "source": [SETTINGS["EVENT_SOURCE"]]}  # Fn::Sub resolved
    events.put_rule(Name="notify", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="notify", Targets=[{"Id": "topic", "Arn": arn,
                                                "InputTransformer": rule["Targets"][0]["InputTransformer"]}])
    return lambda: [json.loads(m["Body"])
                    for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=1).get("Messages", [])]


def _commit(stack, run: dict, returned: list | None = None) -> None:
    """What the job writes at its commit point: the summary, every manifest file processed."""
    _began(stack, run)
    s3 = stack.client("s3")
    bucket, key = run["manifest_uri"].removeprefix("s3://").split("/", 1)
    manifest = RunManifest.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    summary = RunSummary(run["run_id"], files=[FileSummary(ref.uri, ref.file_id, "orders", RowCounts(3, 2, 1))
                                               for ref in manifest.files], returned=returned or [])
    s3.put_object(Bucket=bucket, Key=summary_key(run["run_id"]), Body=summary.to_json().encode())


@pytest.mark.parametrize("state", ["SUCCEEDED", "TIMEOUT", "FAILED"])
def test_a_run_that_committed_is_emailed_once_with_its_counts(start_job, ledger, stack, app, state):
    inbox = _inbox(stack, app)
    refs = _pending(ledger, 2)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    _commit(stack, run)
    ended = event("job-succeeded.json" if state == "SUCCEEDED" else "job-failed.json")
    ended["detail"].update(jobRunId=run["job_run_id"], state=state)
    result = start_job(ended)
    if state != "SUCCEEDED":  # it died after its commit point: finished from its summary
        assert result["released"] == {"DONE": 2}
        assert {ledger.get(r.file_id)["state"] for r in refs} == {"DONE"}
    assert result["email"] == {"about": run["run_id"], "outcome": "SUCCEEDED", "sent": True}
    [mail] = inbox()
    assert mail.startswith(f"Sluice run {run['run_id']}: SUCCEEDED. 2 files, 6 rows in, 4 written, "
                           f"2 quarantined, 0 duplicate. Written: orders: 2 files")
    assert start_job(ended)["email"]["sent"] is False  # the same end delivered again: no second email
    assert inbox() == []


def test_a_run_that_failed_before_committing_is_emailed_with_why_and_what_next(start_job, ledger, stack, app):
    inbox = _inbox(stack, app)
    _pending(ledger, 2)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    _began(stack, run)
    failed = event("job-failed.json")
    failed["detail"]["jobRunId"] = run["job_run_id"]
    result = start_job(failed)
    assert result["released"] == {"PENDING": 2, "FAILED": 0}
    [mail] = inbox()
    assert mail.startswith(f"Sluice run {run['run_id']}: FAILED - Glue job run {run['job_run_id']} of "
                           f"{SETTINGS['JOB_NAME']} ended FAILED: {plain(failed['detail']['message'])}")
    assert "Its files: 2 back to PENDING with one attempt counted" in mail


def test_a_run_whose_table_handed_its_files_back_is_emailed_partial(start_job, ledger, stack, app):
    inbox = _inbox(stack, app)
    _pending(ledger, 2)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    _commit(stack, run, returned=[ReturnedFile("s3://raw/sensors/a.csv", 'table sensors failed: "bad"')])
    succeeded = event("job-succeeded.json")
    succeeded["detail"]["jobRunId"] = run["job_run_id"]
    assert start_job(succeeded)["email"]["outcome"] == "PARTIAL"
    [mail] = inbox()
    assert "PARTIAL - table sensors failed; 1 file(s) handed back" in mail
    assert "s3://raw/sensors/a.csv: table sensors failed: 'bad'" in mail


def test_a_failed_crawl_is_emailed(start_job, stack, app):
    inbox = _inbox(stack, app)
    result = start_job(event("crawler-failed.json"))
    assert result["email"]["sent"] is True
    [mail] = inbox()
    assert mail.startswith(f"Sluice crawler {SETTINGS['CRAWLER_NAME']} FAILED at ")


def test_every_eventbridge_sample_event_is_accepted(start_job, events_dir, ledger):
    _pending(ledger, 2)
    for path in sorted(events_dir.glob("*.json")):
        if path.name.startswith("sqs-") or path.name == "env.json":
            continue
        result = start_job(json.loads(path.read_text()))
        assert set(result) <= {"runs", "ignored", "released", "sweep", "email"}, path.name


def _job_glue_client():
    """The Glue client the handler's cached planner uses (same settings, same cache entry)."""
    with patch.dict(os.environ, SETTINGS):
        return sys.modules["sluice_fn_start_job_app"].planner().jobs.glue


def _refusing_put_events(monkeypatch, times: int) -> list:
    """PutEvents answers 200 with FailedEntryCount 1 the next `times` calls (what EventBridge does
    for an entry it refuses), through the handler's cached notifier."""
    with patch.dict(os.environ, SETTINGS):
        events = sys.modules["sluice_fn_start_job_app"].planner().notifier.events
    calls, real = [], events.put_events

    def put_events(**kwargs):
        calls.append(kwargs)
        if len(calls) <= times:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]}
        return real(**kwargs)

    monkeypatch.setattr(events, "put_events", put_events)
    return calls


def test_a_refused_email_fails_the_invocation_after_the_next_run_started_and_its_retry_sends_it(
        start_job, ledger, stack, app, monkeypatch):
    """Finding 5: the email was only logged as lost. Now the invocation fails (Lambda retries it,
    then its DLQ keeps it), after the free slot was used; the retry sends the first report."""
    inbox = _inbox(stack, app)
    _pending(ledger, 1)
    [run] = start_job(event("crawler-succeeded.json"))["runs"]
    _commit(stack, run)
    _pending(ledger, 2, prefix="orders/next")
    calls = _refusing_put_events(monkeypatch, times=1)
    succeeded = event("job-succeeded.json")
    succeeded["detail"]["jobRunId"] = run["job_run_id"]
    with pytest.raises(NotificationFailed, match="InternalFailure"):
        start_job(succeeded)
    assert ledger.count_by_state()["CLAIMED"] == 3  # the next run started before the email
    assert start_job(succeeded)["email"]["sent"] is True  # Lambda's retry
    [mail] = inbox()
    assert mail.startswith(f"Sluice run {run['run_id']}: SUCCEEDED") and len(calls) == 2


def test_each_sweep_publishes_how_long_the_oldest_file_has_waited(start_job, ledger, stack):
    earlier = DynamoLedger(ledger.table, now=lambda: datetime.now(UTC) - timedelta(minutes=10))
    _pending(earlier, 1, prefix="orders/waiting")
    start_job(event("scheduled-sweep.json"))
    cloudwatch, now = stack.client("cloudwatch"), datetime.now(UTC)
    ages = {}
    for state in ("PENDING", "CLAIMED"):
        [point] = cloudwatch.get_metric_statistics(
            Namespace="Sluice", MetricName="OldestWaitingFileAge", StartTime=now - timedelta(minutes=5),
            EndTime=now + timedelta(minutes=1), Period=600, Statistics=["Maximum"],
            Dimensions=[{"Name": "Ledger", "Value": SETTINGS["LEDGER_TABLE"]},
                        {"Name": "State", "Value": state}])["Datapoints"]
        ages[state] = point["Maximum"]
    assert 590 < ages["PENDING"] < 700 and ages["CLAIMED"] == 0


class _RunningOutContext(FakeContext):
    """A context whose remaining time falls by 200 ms each time it is read."""

    def __init__(self, function_name: str, left_ms: int) -> None:
        super().__init__(function_name)
        self.left_ms = left_ms

    def get_remaining_time_in_millis(self) -> int:
        self.left_ms -= 200
        return self.left_ms + 200


def test_claims_stop_short_of_the_timeout_and_leave_no_file_without_a_run(stack, ledger, monkeypatch):
    monkeypatch.setitem(SETTINGS, "MAX_FILES_PER_RUN", "1000")
    _pending(ledger, 120)
    handler = load_handler(ROOT / "functions" / "start_job", "app.lambda_handler")
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    context = _RunningOutContext("sluice-dev-start-job", 30_000)
    [run] = handler(event("crawler-succeeded.json"), context)["runs"]  # ~100 reads before the 10 s margin
    counts = ledger.count_by_state()
    assert 0 < run["files"] < 120 and counts["CLAIMED"] == run["files"]
    assert counts["PENDING"] == 120 - run["files"]
    assert [r["Arguments"]["--run_id"] for r in _job_runs(stack)] == [run["run_id"]]


def test_the_sweep_releases_claims_whose_run_never_started(start_job, ledger, stack):
    earlier = DynamoLedger(ledger.table, now=lambda: datetime.now(UTC) - timedelta(hours=1))
    stranded = _pending(earlier, 2, prefix="orders/stranded")
    earlier.claim_pending("run-timed-out", RunBudget(10, 10**9))  # no manifest, no job run: a timeout
    held = _pending(earlier, 1, prefix="orders/held")
    earlier.claim_pending("run-held", RunBudget(10, 10**9))
    s3 = stack.client("s3")
    s3.put_object(Bucket=SETTINGS["ARTIFACTS_BUCKET"], Key=manifest_key("run-held"), Body=b"{}")
    stack.client("glue").start_job_run(JobName=SETTINGS["JOB_NAME"], Arguments={"--run_id": "run-held"})
    result = start_job(event("scheduled-sweep.json"))
    assert result == {"sweep": "crawler started; 2 files released from runs that never started"}
    assert {ledger.get(r.file_id)["state"] for r in stranded} == {"PENDING"}
    assert ledger.get(held[0].file_id)["state"] == "CLAIMED"  # its job run settles it when it ends
