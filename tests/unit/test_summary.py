"""The run summary contract: summary.json's exact shape, older summaries, and the email text."""

from __future__ import annotations

import json

from ledger import FileSummary, ReturnedFile, RowCounts, RunSummary, TableSummary

from run_summary import summary_message  # isort: skip  (functions/start_job is on sys.path)

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


def test_the_email_text_is_unchanged():
    subject, text = summary_message(RunSummary.from_dict(WRITTEN))
    assert subject == f"Sluice run {RUN}: 2 files, 7 of 10 rows written, 2 quarantined, 1 duplicate"
    assert text == "\n".join([
        subject, "",
        "  s3://raw/orders/a.csv: 10 in, 7 out, 2 quarantined, 1 duplicate",
        f"  s3://raw/orders/empty.csv: 0 in, 0 out, 0 quarantined, 0 duplicate ({EMPTY})",
        "", "Quarantined rows, with the reason and source file: s3://processed/_quarantine/",
        "", "Not processed in this run, returned to the ledger (retried, then FAILED):",
        "  s3://raw/uncrawled/b.csv: no catalog table covers the file",
        "", "Written partitions:", f"  s3://processed/orders/year=2026/month=11/day=24/run_id={RUN}/"])


def test_a_clean_run_email_has_no_quarantine_or_returned_section():
    clean = RunSummary("run-1", files=[FileSummary("s3://raw/o/a.csv", "id", "o", RowCounts(3, 3, 0))],
                       quarantine="s3://p/_quarantine/")
    subject, text = summary_message(clean)
    assert text == f"{subject}\n\n  s3://raw/o/a.csv: 3 in, 3 out, 0 quarantined, 0 duplicate"
    long = RunSummary("run-" + "x" * 120)
    assert len(summary_message(long)[0]) == 100  # SNS's subject limit
