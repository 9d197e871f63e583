"""`sluice estimate` runs the pipeline's own batching rules: what it counts follows them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sluice.estimate import Settings, Workload, simulate
from sluice.estimate_report import estimate, load_prices
from sluice.stack.resolve import local_parameters


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.of(local_parameters(env="default"))


@pytest.fixture(scope="module")
def assumptions() -> dict:
    return load_prices()["assumptions"]


def test_settings_come_from_the_environment_over_the_template_defaults(settings):
    prod = Settings.of(local_parameters(env="prod"))
    assert (settings.workers, prod.workers) == (2, 4)  # GlueNumberOfWorkers: default, prod's override
    assert settings.max_files == 1000 and settings.crawl_interval_s == 300 and settings.memory_mb == 256


def test_a_quiet_pipeline_crawls_and_runs_once_per_file(settings, assumptions):
    counts = simulate(Workload(files_per_hour=1, mean_bytes=1000), settings, assumptions)
    assert counts.files > 0 and counts.crawls == counts.files and counts.runs == counts.files


def test_under_load_crawls_are_paced_and_runs_respect_max_files(settings, assumptions):
    busy = replace(settings, max_files=200)
    counts = simulate(Workload(files_per_hour=60_000, mean_bytes=1000), busy, assumptions)
    assert counts.crawls <= counts.seconds / busy.crawl_interval_s + 1  # BatchIntake's pacing
    assert max(counts.run_files) <= 200 and sum(counts.run_files) <= counts.files  # RunBudget


def test_each_line_names_its_price_page_and_the_total_adds_up(settings):
    est = estimate(Workload(files_per_hour=100, mean_bytes=20_000, datasets=2), settings)
    assert all(line.page.startswith("https://aws.amazon.com/") and line.moved_by for line in est.lines)
    assert est.total == pytest.approx(sum(line.cost for line in est.lines))
    assert 0 < est.p50_s <= est.p95_s
