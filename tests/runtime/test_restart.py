"""Stopping `sluice up` in the middle of a burst and starting it again loses nothing: the state
saved on stop (objects, ledger, queued messages, catalog) is restored, and the runs the stop
interrupted are settled like STOPPED runs on AWS."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import (
    assert_each_row_once,
    ledger_items,
    orders_csv,
    put,
    started_runtime,
    until,
    wait,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def test_a_restart_in_the_middle_of_a_burst_loses_nothing(tmp_path):
    files = 30
    with started_runtime(tmp_path, persist=True) as first:
        for i in range(files):
            put(first, f"restart/part-{i:03d}.csv", orders_csv(5, start=i * 5))
        until(first, lambda: any(i["state"] == "DONE" for i in ledger_items(first, "restart")),
              "a first file DONE")  # stop while the burst is under way
        before = ledger_items(first, "restart")
    assert (tmp_path / "snapshot" / "ledger.json").exists()
    with started_runtime(tmp_path, persist=True) as second:  # the restored state, with the roles' grants
        items = wait(second, "restart", files, states=("DONE",))
        assert len(items) == files
        assert_each_row_once(second, "restart", {f"o-{n:06d}" for n in range(files * 5)})
    # the stop did interrupt the burst: files not yet recorded, or not yet DONE
    assert len(before) < files or any(i["state"] != "DONE" for i in before)
