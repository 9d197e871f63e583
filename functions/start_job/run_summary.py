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

# Publish: "Messages must be UTF-8 encoded strings and at most 256 KB in size (262,144 bytes, not
# 262,144 characters)"; a Subject at most 100 characters
# (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
SNS_MESSAGE_BYTES = 262_144
SNS_SUBJECT_CHARACTERS = 100


def summary_message(summary: RunSummary, full_at: str = "the run's summary.json",
                    limit: int = SNS_MESSAGE_BYTES) -> tuple[str, str]:
    """(subject, text) of the email, cut to what SNS accepts: the subject to 100 characters, the
    text to `limit` UTF-8 bytes, ending with where the full summary is (`full_at`).

    >>> from ledger import FileSummary, RowCounts
    >>> many = RunSummary("run-2", files=[FileSummary(f"s3://raw/o/{i}.csv", f"s3://raw/o/{i}.csv#e", "o",
    ...                                               RowCounts(1, 1, 0)) for i in range(200)])
    >>> _, text = summary_message(many, "s3://arts/runs/run-2/summary.json", limit=1000)
    >>> len(text.encode()) <= 1000, text.splitlines()[-1]
    (True, 'The full summary: s3://arts/runs/run-2/summary.json')
    """
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
    return subject[:SNS_SUBJECT_CHARACTERS], _cut("\n".join(lines), full_at, limit)


def _cut(text: str, full_at: str, limit: int) -> str:
    if len(text.encode()) <= limit:
        return text
    tail = f"\n\n... cut to fit SNS's message size limit ({limit} bytes).\nThe full summary: {full_at}"
    kept = text.encode()[:max(limit - len(tail.encode()), 0)].decode("utf-8", errors="ignore")
    return kept[:kept.rfind("\n")] + tail if "\n" in kept else kept + tail
