"""The run summary email: what a finished run did with the data, from the summary the job writes
next to its manifest. Glue's own state-change event says only that the run ended.

    >>> from ledger import FileSummary, RowCounts, RunSummary
    >>> subject, text = summary_message(RunSummary("run-1", files=[
    ...     FileSummary("s3://raw/o/a.csv", "s3://raw/o/a.csv#e", "o", RowCounts(6, 5, 1)),
    ...     FileSummary("s3://raw/o/b.csv", "s3://raw/o/b.csv#e", "o", RowCounts(4, 2, 1, 1))],
    ...     quarantine="s3://p/_quarantine/"))
    >>> subject
    'Sluice run run-1: 2 files, 7 of 10 rows written, 2 quarantined, 1 duplicate'
"""

from __future__ import annotations

from ledger import RunSummary


def summary_message(summary: RunSummary) -> tuple[str, str]:
    """(subject, text) of the email; the subject is cut to SNS's 100 characters."""
    totals = summary.totals
    subject = (f"Sluice run {summary.run_id}: {len(summary.files)} files, "
               f"{totals.rows_out} of {totals.rows_in} rows written, "
               f"{totals.rows_bad} quarantined, {totals.rows_duplicate} duplicate")
    lines = [subject, ""]
    for f in summary.files:
        note = f" ({f.note})" if f.note else ""
        lines.append(f"  {f.file}: {f.counts.rows_in} in, {f.counts.rows_out} out, {f.counts.rows_bad} "
                     f"quarantined, {f.counts.rows_duplicate} duplicate{note}")
    if totals.rows_bad or summary.has_notes:
        lines += ["", f"Quarantined rows, with the reason and source file: {summary.quarantine}"]
    if summary.returned:
        lines += ["", "Not processed in this run, returned to the ledger (retried, then FAILED):",
                  *(f"  {r.file}: {r.reason}" for r in summary.returned)]
    if summary.output_partitions:
        lines += ["", "Written partitions:", *(f"  {p}" for p in summary.output_partitions)]
    return subject[:100], "\n".join(lines)
