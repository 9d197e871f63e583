"""The one email a run gets: what a finished run did, composed here and sent as a "Sluice Run
Finished" event that the template's NotifyRule hands to the notification topic (and a failed crawl
likewise, as "Sluice Crawl Failed"). Glue's own state-change event says only that a run ended.

The message is one line of plain text that stays valid JSON inside the rule's input template
`"<message>"` whether or not EventBridge escapes it: the user guide says both ("Amazon
EventBridge input transformation": the older page, "EventBridge doesn't escape values extracted by
Input Path"; the current one, that only `aws.events.event` is "not escaped"). So no character
that JSON would need escaped ever reaches it: quotes become ', backslashes /, and every line break,
tab or control character one space (`plain`). SNS delivers the transformed input as it is, quotes
included ("Tutorial: Use input transformer to customize what EventBridge passes to the event
target": the SNS message is `"This event was of customerCreated type."`).

    >>> from ledger import FileSummary, RowCounts, RunSummary
    >>> summary = RunSummary("run-1", files=[
    ...     FileSummary("s3://raw/o/a.csv", "s3://raw/o/a.csv#e", "o", RowCounts(6, 5, 1)),
    ...     FileSummary("s3://raw/o/b.csv", "s3://raw/o/b.csv#e", "o", RowCounts(4, 2, 1, 1))],
    ...     quarantine="s3://p/_quarantine/")
    >>> report = run_report(RunEnd("jr_1", "SUCCEEDED"), "run-1", summary, Place("p", "db", "etl"))
    >>> report.detail["outcome"], report.message.split(". ")[1]
    ('SUCCEEDED', '2 files, 10 rows in, 7 written, 2 quarantined, 1 duplicate')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ledger import RunSummary

RUN_FINISHED = "Sluice Run Finished"
CRAWL_FAILED = "Sluice Crawl Failed"
# PutEvents takes entries of at most 256 KB ("Amazon EventBridge quotas"; "Calculating PutEvents
# event entry size"): the message and the lists in the detail are cut well below it.
MESSAGE_CHARACTERS = 60_000
LISTED = 50  # files named in the message and the detail; the run summary has them all
REASON_CHARACTERS = 600

_UNSAFE = re.compile(r'["\\]|[\x00-\x1f\x7f\u2028\u2029]+|\s{2,}')


def plain(text: str, limit: int | None = None) -> str:
    """`text` with nothing JSON would escape: " -> ', \\ -> /, line breaks and other control
    characters -> one space.

    >>> plain('KeyError: "event_time"\\n  at C:\\\\job\\tline 3')
    "KeyError: 'event_time' at C:/job line 3"
    """
    cleaned = _UNSAFE.sub(lambda m: {'"': "'", "\\": "/"}.get(m.group(), " "), text).strip()
    cleaned = re.sub(r" {2,}", " ", cleaned)
    return cleaned if limit is None or len(cleaned) <= limit else cleaned[:limit - 3].rstrip() + "..."


@dataclass(frozen=True)
class RunEnd:
    """How Glue says the job run ended (its "Glue Job State Change" event)."""

    job_run_id: str
    state: str  # SUCCEEDED | FAILED | TIMEOUT | STOPPED
    message: str = ""


@dataclass(frozen=True)
class Place:
    """Where the pipeline keeps what a reader of the email looks for next."""

    processed_bucket: str
    processed_database: str
    job_name: str
    region: str = "us-east-1"
    max_attempts: int = 3

    def console(self, job_run_id: str) -> str:
        return (f"https://{self.region}.console.aws.amazon.com/gluestudio/home?region={self.region}"
                f"#/job/{self.job_name}/run/{job_run_id}")


@dataclass(frozen=True)
class Report:
    """One notification: its event's detail-type and detail (with the `message` the rule emails),
    and `name`, what it is about (a run id, a job run id, a crawl event id): sent once per name."""

    detail_type: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.detail["message"])


def run_report(end: RunEnd, run_id: str | None, summary: RunSummary | None, place: Place,
               settled: dict[str, int] | None = None, summary_uri: str = "") -> Report:
    """The email of one run: what it wrote per table, what it quarantined, what it handed back and
    why, and what happens next. `settled` is how many of the run's files a failed run's settling
    moved to each state (PENDING, FAILED); `summary` the run summary, if the run committed."""
    glue = f"Glue job run {end.job_run_id} of {place.job_name} ended {end.state}"
    glue_said = f"{glue}: {end.message}" if end.message and end.state != "SUCCEEDED" else glue
    if run_id is None:
        return _report(end, end.job_run_id, end.state, [
            f"{glue_said}. It was not started by Sluice (it has no --run_id argument): no file was "
            f"claimed for it, so none was settled"], {"run_id": None})
    detail: dict[str, Any] = {"run_id": run_id, "summary": summary_uri or None}
    if summary is None:
        return _unfinished(end, run_id, place, settled or {}, glue_said, detail)
    # The summary's own word for it (RunSummary.outcome), in the email's.
    outcome = {"partly returned": "PARTIAL", "returned": "FAILED"}.get(summary.outcome, "SUCCEEDED")
    totals = summary.totals
    tables = _tables(summary, place)
    parts = [f"Sluice run {run_id}: {outcome}" + (
        f" - {_failed_tables(summary)} failed; {len(summary.returned)} file(s) handed back"
        if summary.returned else ""),
        f"{len(summary.files)} files, {totals.rows_in} rows in, {totals.rows_out} written, "
        f"{totals.rows_bad} quarantined, {totals.rows_duplicate} duplicate"]
    parts += ["Written: " + " | ".join(t["line"] for t in tables.values())] if tables else []
    parts += ["Files: " + _listed([f"{f.file}: {f.counts.rows_in} in, {f.counts.rows_out} written, "
                                   f"{f.counts.rows_bad} quarantined, {f.counts.rows_duplicate} duplicate"
                                   for f in summary.files])] if summary.files else []
    unread = [f for f in summary.files if f.note]
    if totals.rows_bad or unread:
        parts.append(f"Quarantined rows and unreadable files, each with the reason and its source "
                     f"file: {summary.quarantine}" + (
                         "; files with no rows: " + _listed([f"{f.file} ({f.note})" for f in unread])
                         if unread else ""))
    if summary.returned:
        parts.append(f"Handed back (one attempt counted: back to PENDING and retried by the next crawl "
                     f"or the sweep; FAILED once a file has had {place.max_attempts} attempts - fix "
                     f"the cause, then redrive it): "
                     + _listed([f"{r.file}: {r.reason}" for r in summary.returned]))
    if end.state != "SUCCEEDED":
        parts.append(f"{glue_said} after the run's commit point: its output is complete and stands, "
                     f"and its files were marked DONE from the run summary")
    else:
        parts.append(glue)
    if summary_uri:
        parts.append(f"Run summary: {summary_uri}")
    detail.update(outcome=outcome, tables={n: {k: v for k, v in t.items() if k != "line"}
                                           for n, t in tables.items()},
                  handed_back=[{"file": r.file, "reason": plain(r.reason, REASON_CHARACTERS)}
                               for r in summary.returned[:LISTED]],
                  quarantine=summary.quarantine or None)
    return _report(end, run_id, outcome, parts, detail)


def _unfinished(end: RunEnd, run_id: str, place: Place, settled: dict[str, int], glue_said: str,
                detail: dict[str, Any]) -> Report:
    if end.state == "SUCCEEDED":  # the job always writes its summary before it succeeds
        return _report(end, run_id, "INCOMPLETE", [
            f"Sluice run {run_id}: INCOMPLETE - {glue_said}, but wrote no run summary at "
            f"{detail['summary']}: its files stay CLAIMED (sluice status, or the ledger's ByRun index, "
            f"lists them) until the run is looked into", f"Run details: {place.console(end.job_run_id)}"],
            detail)
    pending, failed = settled.get("PENDING", 0), settled.get("FAILED", 0)
    next_steps = []
    if pending:
        next_steps.append(f"{pending} back to PENDING with one attempt counted, retried by the next "
                          f"crawl or the sweep")
    if failed:
        next_steps.append(f"{failed} FAILED after {place.max_attempts} attempts - fix the cause, then "
                          f"redrive them (sluice redrive locally; on AWS set each ledger item back to "
                          f"PENDING with attempts 0)")
    files = "; ".join(next_steps) if next_steps else "none was still claimed by it (already settled)"
    detail.update(outcome=end.state, settled={"PENDING": pending, "FAILED": failed})
    return _report(end, run_id, end.state, [
        f"Sluice run {run_id}: {end.state} - {glue_said}",
        "Nothing from this run was kept: what it wrote was discarded",
        f"Its files: {files}", f"Run details: {place.console(end.job_run_id)}"], detail)


def _tables(summary: RunSummary, place: Place) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for f in summary.files:
        t = tables.setdefault(f.table, {"files": 0, "rows_in": 0, "rows_out": 0, "rows_bad": 0,
                                        "rows_duplicate": 0})
        t["files"] += 1
        for key, value in f.counts.to_dict().items():
            t[key] += value
    for name, t in tables.items():
        t["output"] = f"s3://{place.processed_bucket}/{name}/"
        t["table"] = f"{place.processed_database}.{name}"
        t["line"] = (f"{name}: {t['files']} files, {t['rows_in']} in, {t['rows_out']} written, "
                     f"{t['rows_bad']} quarantined, {t['rows_duplicate']} duplicate -> {t['output']} "
                     f"(table {t['table']})")
    return tables


def _failed_tables(summary: RunSummary) -> str:
    """The tables whose files came back, by the reason the job gave ("table <name> failed: ...")."""
    matched = [m for r in summary.returned if (m := re.match(r"table (\S+) failed", r.reason))]
    names, others = sorted({m.group(1) for m in matched}), len(summary.returned) - len(matched)
    said = [f"table {n}" for n in names] + ([f"{others} uncatalogued file(s)"] if others else [])
    return ", ".join(said) or "some files"


def _listed(items: list[str]) -> str:
    shown = [plain(i, REASON_CHARACTERS) for i in items[:LISTED]]
    more = f"; and {len(items) - LISTED} more (see the run summary)" if len(items) > LISTED else ""
    return "; ".join(shown) + more


def _report(end: RunEnd, name: str, outcome: str, parts: list[str], detail: dict[str, Any]) -> Report:
    message = plain(". ".join(p.rstrip(".") for p in parts) + ".", MESSAGE_CHARACTERS)
    return Report(RUN_FINISHED, name, {
        **detail, "outcome": outcome, "job_run_id": end.job_run_id, "glue_state": end.state,
        "message": message})


def crawl_failed_report(event_id: str, crawler: str, error: str, time: str, log_link: str = "") -> Report:
    """The email of a failed crawl (its files stay PENDING; the sweep starts the crawler again)."""
    message = plain(f"Sluice crawler {crawler} FAILED at {time}: {error or 'no reason given'}. The files "
                    f"it was cataloguing stay PENDING in the ledger; the sweep starts the crawler again "
                    f"once they have waited SweepAfterSeconds, and their runs follow its success."
                    + (f" Crawler log: {log_link}" if log_link else ""), MESSAGE_CHARACTERS)
    return Report(CRAWL_FAILED, f"crawl-{event_id}", {"crawler": crawler, "time": time, "message": message,
                                                       "error": plain(error, REASON_CHARACTERS)})
