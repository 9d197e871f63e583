"""The run summary contract: summary.json's exact shape, older summaries; and the one email a run
gets, composed from it (run_summary.py)."""

from __future__ import annotations

import json

import pytest

from ledger import FileSummary, ReturnedFile, RowCounts, RunSummary, TableSummary

from run_summary import (  # isort: skip  (functions/start_job is on sys.path)
    CRAWL_FAILED,
    MESSAGE_CHARACTERS,
    RUN_FINISHED,
    Place,
    RunEnd,
    crawl_failed_report,
    run_report,
)

RUN = "run-20261125T101500Z-3f9a1c2e"
QUARANTINE = f"s3://processed/_quarantine/orders/run_id={RUN}/"
EMPTY = "no data rows (empty, header only, or unreadable)"

# summary.json as the job has written it since files carried their ids (keys in this order).
WRITTEN = {
    "run_id": RUN, "job_run_id": "jr_1",
    "tables": {"orders": {"files": 2, "partitions_written": 1, "partitions_new": 1,
                          "quarantine": QUARANTINE}},
    "files": [
        {"file": "s3://raw/orders/a.csv", "file_id": "s3://raw/orders/a.csv#e1", "table": "orders",
         "rows_in": 10, "rows_out": 7, "rows_bad": 2, "rows_duplicate": 1},
        {"file": "s3://raw/orders/empty.csv", "file_id": "s3://raw/orders/empty.csv#e2", "table": "orders",
         "rows_in": 0, "rows_out": 0, "rows_bad": 0, "rows_duplicate": 0, "note": EMPTY}],
    "output_partitions": [f"s3://processed/orders/year=2026/month=11/day=24/run_id={RUN}/"],
    "returned": [{"file": "s3://raw/uncrawled/b.csv", "reason": "no catalog table covers the file"}],
    "totals": {"rows_in": 10, "rows_out": 7, "rows_bad": 2, "rows_duplicate": 1, "files": 2, "returned": 1},
    "bytes": 1234, "duration_s": 3.21, "quarantine": "s3://processed/_quarantine/",
}


def test_the_json_shape_is_read_and_written_back_exactly():
    text = json.dumps(WRITTEN, indent=2)
    summary = RunSummary.from_json(text)
    assert summary.to_json() == text  # same keys, same order, same values
    assert summary.tables["orders"] == TableSummary(2, 1, 1, QUARANTINE)
    assert summary.files[1].note == EMPTY and summary.files[0].counts == RowCounts(10, 7, 2, 1)
    assert summary.returned == [ReturnedFile("s3://raw/uncrawled/b.csv", "no catalog table covers the file")]
    assert summary.totals == RowCounts(10, 7, 2, 1)
    assert summary.outcome == "partly returned"
    assert RunSummary.from_json(summary.to_json()) == summary


def test_a_summary_from_an_older_job_still_loads():
    # before file ids, duplicates and returned files were recorded
    older = {"run_id": "run-old", "job_run_id": "jr_0", "tables": {}, "output_partitions": [],
             "files": [{"file": "s3://raw/o/a.csv", "table": "o",
                        "rows_in": 4, "rows_out": 3, "rows_bad": 1}],
             "totals": {"rows_in": 4, "rows_out": 3, "rows_bad": 1, "files": 1},
             "bytes": 10, "duration_s": 1.5, "quarantine": "s3://p/_quarantine/"}
    summary = RunSummary.from_json(json.dumps(older))
    assert summary.files == [FileSummary("s3://raw/o/a.csv", "", "o", RowCounts(4, 3, 1, 0))]
    assert summary.returned == [] and summary.totals == RowCounts(4, 3, 1, 0)
    assert summary.to_dict()["totals"] == {"rows_in": 4, "rows_out": 3, "rows_bad": 1, "rows_duplicate": 0,
                                           "files": 1, "returned": 0}


def test_row_counts_round_trip_and_read_a_ledger_item():
    counts = RowCounts(8, 5, 2, 1)
    assert RowCounts.from_dict(counts.to_dict()) == counts
    item = {"file_id": "x", "state": "DONE", "rows_in": 8, "rows_out": 5, "rows_bad": 2, "rows_duplicate": 1}
    assert RowCounts.from_dict(item) == counts  # DynamoDB numbers (Decimal) and extra keys too


PLACE = Place("processed", "sluice_dev_processed", "sluice-dev-etl", max_attempts=3)
SUMMARY_URI = f"s3://artifacts/runs/{RUN}/summary.json"


def test_a_run_with_every_table_written_is_a_success_with_its_counts_per_table():
    clean = RunSummary(RUN, files=[FileSummary("s3://raw/o/a.csv", "id-a", "orders", RowCounts(3, 3, 0)),
                                   FileSummary("s3://raw/s/b.csv", "id-b", "sensors", RowCounts(5, 4, 1))],
                       quarantine="s3://processed/_quarantine/")
    report = run_report(RunEnd("jr_1", "SUCCEEDED"), RUN, clean, PLACE, summary_uri=SUMMARY_URI)
    assert (report.detail_type, report.name, report.detail["outcome"]) == (RUN_FINISHED, RUN, "SUCCEEDED")
    assert report.message.startswith(f"Sluice run {RUN}: SUCCEEDED. 2 files, 8 rows in, 7 written, "
                                     f"1 quarantined, 0 duplicate. Written: orders: 1 files, 3 in, 3 written")
    assert "sensors: 1 files, 5 in, 4 written, 1 quarantined, 0 duplicate -> s3://processed/sensors/ " \
           "(table sluice_dev_processed.sensors)" in report.message
    assert "Quarantined rows and unreadable files, each with the reason and its source file: " \
           "s3://processed/_quarantine/" in report.message
    assert report.message.endswith(
        f"Glue job run jr_1 of sluice-dev-etl ended SUCCEEDED. Run summary: {SUMMARY_URI}.")
    assert report.detail["tables"]["sensors"] == {"files": 1, "rows_in": 5, "rows_out": 4, "rows_bad": 1,
                                                 "rows_duplicate": 0, "output": "s3://processed/sensors/",
                                                 "table": "sluice_dev_processed.sensors"}


def test_a_run_whose_tables_handed_their_files_back_is_not_a_success():
    summary = RunSummary.from_dict(WRITTEN)  # orders written; one uncatalogued file handed back
    partial = run_report(RunEnd("jr_1", "SUCCEEDED"), RUN, summary, PLACE)
    assert partial.detail["outcome"] == "PARTIAL"
    assert partial.message.startswith(f"Sluice run {RUN}: PARTIAL - 1 uncatalogued file(s) failed; "
                                      f"1 file(s) handed back")
    assert "s3://raw/uncrawled/b.csv: no catalog table covers the file" in partial.message
    assert "FAILED once a file has had 3 attempts - fix the cause, then redrive it" in partial.message
    nothing = RunSummary(RUN, returned=[ReturnedFile("s3://raw/s/a.csv",
                                                     "table sensors failed: SettingsError: x")])
    failed = run_report(RunEnd("jr_1", "SUCCEEDED"), RUN, nothing, PLACE)
    assert failed.detail["outcome"] == "FAILED"  # Glue says SUCCEEDED; no table was written
    assert failed.message.startswith(
        f"Sluice run {RUN}: FAILED - table sensors failed; 1 file(s) handed back")


def test_a_run_that_failed_before_its_commit_point_says_why_and_what_happens_next():
    report = run_report(RunEnd("jr_9", "FAILED", 'Py4JJavaError: "boom"\n  at line 3'), RUN, None, PLACE,
                        settled={"PENDING": 2, "FAILED": 1})
    assert report.detail["outcome"] == "FAILED" and report.detail["settled"] == {"PENDING": 2, "FAILED": 1}
    assert report.message == (
        f"Sluice run {RUN}: FAILED - Glue job run jr_9 of sluice-dev-etl ended FAILED: "
        f"Py4JJavaError: 'boom' at line 3. Nothing from this run was kept: what it wrote was discarded. "
        f"Its files: 2 back to PENDING with one attempt counted, retried by the next crawl or the sweep; "
        f"1 FAILED after 3 attempts - fix the cause, then redrive them (sluice redrive locally; on AWS set "
        f"each ledger item back to PENDING with attempts 0). Run details: https://us-east-1.console.aws.amazon.com/gluestudio/home?"
        f"region=us-east-1#/job/sluice-dev-etl/run/jr_9.")


def test_a_run_that_timed_out_after_its_commit_point_stands():
    report = run_report(RunEnd("jr_2", "TIMEOUT", "late"), RUN, RunSummary.from_dict(WRITTEN), PLACE)
    assert report.detail["glue_state"] == "TIMEOUT" and report.detail["outcome"] == "PARTIAL"
    assert ("Glue job run jr_2 of sluice-dev-etl ended TIMEOUT: late after the run's commit point: "
            "its output is complete and stands") in report.message


def test_a_job_run_sluice_did_not_start_is_said_so():
    report = run_report(RunEnd("jr_x", "STOPPED", "by hand"), None, None, PLACE)
    assert (report.name, report.detail["outcome"]) == ("jr_x", "STOPPED")
    assert "It was not started by Sluice (it has no --run_id argument)" in report.message


@pytest.mark.parametrize("text", ['quote " backslash \\ newline \n tab \t', "\x00\x1f\u2028 ctrl",
                                  "unicode naïve Ünïcødé ✓", "x" * 70_000])
def test_the_message_is_valid_json_in_its_template_whether_or_not_eventbridge_escapes_it(text):
    report = run_report(RunEnd("jr_1", "FAILED", text), RUN, None, PLACE, settled={"PENDING": 1})
    unescaped, escaped = f'"{report.message}"', json.dumps(report.message, ensure_ascii=False)
    assert json.loads(unescaped) == json.loads(escaped) == report.message
    assert len(report.message) <= MESSAGE_CHARACTERS
    assert len(json.dumps(report.detail).encode()) < 256 * 1024  # a PutEvents entry's limit


def test_a_large_run_names_some_files_and_says_where_the_rest_are():
    files = [FileSummary(f"s3://raw/o/{i:05}.csv", f"f{i}", "o", RowCounts(1, 1, 0)) for i in range(5_000)]
    report = run_report(RunEnd("jr_1", "SUCCEEDED"), RUN, RunSummary(RUN, files=files), PLACE,
                        summary_uri=SUMMARY_URI)
    assert "s3://raw/o/00049.csv" in report.message and "s3://raw/o/00050.csv" not in report.message
    assert "and 4950 more (see the run summary)" in report.message and SUMMARY_URI in report.message


def test_a_failed_crawl_is_emailed_with_its_reason():
    report = crawl_failed_report("ev-1", "sluice-dev-raw", 'Internal "error"', "2026-11-25T10:00:00Z", "https://log")
    assert (report.detail_type, report.name) == (CRAWL_FAILED, "crawl-ev-1")
    assert report.message.startswith("Sluice crawler sluice-dev-raw FAILED at 2026-11-25T10:00:00Z: "
                                     "Internal 'error'. The files it was cataloguing stay PENDING")
