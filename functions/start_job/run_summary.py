"""The run summary email: what a finished run did with the data, from the summary JSON the job
writes next to its manifest. Glue's own state-change event says only that the run ended.

    >>> subject, text = summary_message({"run_id": "run-1", "totals": {"files": 2, "rows_in": 10,
    ...     "rows_out": 7, "rows_bad": 2, "rows_duplicate": 1}, "files": [], "output_partitions": [],
    ...     "quarantine": "s3://p/_quarantine/"})
    >>> subject
    'Sluice run run-1: 2 files, 7 of 10 rows written, 2 quarantined, 1 duplicate'
"""

from __future__ import annotations


def summary_message(summary: dict) -> tuple[str, str]:
    totals = summary.get("totals", {})
    subject = (f"Sluice run {summary['run_id']}: {totals.get('files', 0)} files, "
               f"{totals.get('rows_out', 0)} of {totals.get('rows_in', 0)} rows written, "
               f"{totals.get('rows_bad', 0)} quarantined, {totals.get('rows_duplicate', 0)} duplicate")
    lines = [subject, ""]
    for f in summary.get("files", []):
        note = f" ({f['note']})" if f.get("note") else ""
        lines.append(f"  {f['file']}: {f['rows_in']} in, {f['rows_out']} out, {f['rows_bad']} quarantined, "
                     f"{f['rows_duplicate']} duplicate{note}")
    if totals.get("rows_bad") or any(f.get("note") for f in summary.get("files", [])):
        lines += ["", f"Quarantined rows, with the reason and source file: {summary.get('quarantine', '')}"]
    if summary.get("returned"):
        lines += ["", "Not processed in this run, returned to the ledger (retried, then FAILED):",
                  *(f"  {f['file']}: {f['reason']}" for f in summary["returned"])]
    if summary.get("output_partitions"):
        lines += ["", "Written partitions:", *(f"  {p}" for p in summary["output_partitions"])]
    return subject[:100], "\n".join(lines)
