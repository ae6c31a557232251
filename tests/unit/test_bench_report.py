"""The bench's report: JSON shape, the printed table, and the contract of the summary line."""

from __future__ import annotations

import argparse
import re

import pytest

from touchpoint.bench.command import add_arguments, options_from
from touchpoint.bench.measure import ContenderResult, skipped
from touchpoint.bench.report import build_report, render, summary_line
from touchpoint.settings import Settings, SettingsError

LINE = re.compile(
    r"^bench: touchpoint=(\S+) floor=(\S+) ratio_floor=(\S+) naive=(\S+) ratio_naive=(\S+) "
    r"ceiling=(\S+) quix=(\S+) ratio_quix=(\S+) p99_clickhouse_s=(\S+) rss_mb=(\S+)$"
)


def _results() -> list[ContenderResult]:
    return [
        ContenderResult("ceiling", "ok", events_per_s=150_000.0, peak_rss_mb=40.0),
        ContenderResult("domain", "ok", events_per_s=9000.0),
        ContenderResult("floor", "ok", events_per_s=6000.0, cpu_s_per_1000=0.15),
        ContenderResult("naive", "ok", events_per_s=1500.0),
        skipped("quix", "quixstreams is not installed"),
        ContenderResult("touchpoint", "ok", events_per_s=4500.0, peak_rss_mb=180.4, cpu_s_per_1000=0.21),
    ]


def test_report_ratios_and_summary_line() -> None:
    report = build_report(_results(), {"p99_s": 0.812, "sent": 10, "visible": 10}, {"mean_bytes": 300.0},
                          {"events": 1000})
    assert report["ratios"] == {"ratio_floor": 0.75, "ratio_naive": 3.0, "ratio_ceiling": 0.03, "ratio_quix": None,
                                "ratio_domain": 0.5}
    line = summary_line(report)
    assert LINE.match(line), line
    assert line == ("bench: touchpoint=4500 floor=6000 ratio_floor=0.75 naive=1500 ratio_naive=3.00 "
                    "ceiling=150000 quix=na ratio_quix=na p99_clickhouse_s=0.812 rss_mb=180")


def test_missing_figures_are_na_not_errors() -> None:
    report = build_report([skipped("touchpoint", "not selected")], None, None, {})
    assert summary_line(report) == ("bench: touchpoint=na floor=na ratio_floor=na naive=na ratio_naive=na "
                                    "ceiling=na quix=na ratio_quix=na p99_clickhouse_s=na rss_mb=na")


def test_render_has_a_row_per_contender_and_ends_with_the_line() -> None:
    report = build_report(_results(), None, {"customers": 3, "mean_bytes": 310.0, "max_bytes": 900}, {})
    text = render(report)
    lines = text.splitlines()
    assert LINE.match(lines[-1])
    for name in ("ceiling", "domain", "floor", "naive", "quix", "touchpoint"):
        assert any(line.startswith(name) for line in lines), name
    assert "quix: quixstreams is not installed" in text
    assert "state per active customer: mean 310 B, max 900 B over 3 customers" in text


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_parse_workers_and_contenders() -> None:
    options = options_from(_args("--workers", "1,2", "--contenders", "floor,touchpoint", "--events", "500"),
                           Settings())
    assert options.workers == (1, 2)
    assert options.contenders == ("floor", "touchpoint")
    assert options.events == 500
    assert options.latency_rate is None  # half the measured one-worker rate
    assert options_from(_args("--latency-rate", "1800"), Settings()).latency_rate == 1800.0


@pytest.mark.parametrize("argv", [("--contenders", "floor,kafka-streams"), ("--workers", "0"),
                                  ("--workers", "one"), ("--events", "10"), ("--latency-rate", "0")])
def test_options_refuse_bad_values_with_a_named_option(argv: tuple[str, ...]) -> None:
    with pytest.raises(SettingsError, match=argv[0]):
        options_from(_args(*argv), Settings())


def test_render_states_the_workers_insert_time() -> None:
    result = ContenderResult("touchpoint", "ok", events_per_s=1000.0, window_s=10.0, window_events=10_000,
                             observed={"clickhouse_inserts": 40.0, "clickhouse_rows": 25_000.0,
                                       "clickhouse_insert_seconds": 4.0})
    text = render(build_report([result], None, None, {}))
    assert "touchpoint: 40 ClickHouse inserts, 2.5 rows per event, 4.0 s inserting (40% of the window)" in text


def test_render_states_the_workers_garbage_collector_pauses() -> None:
    result = ContenderResult("touchpoint", "ok", events_per_s=1000.0, window_s=10.0, window_events=10_000,
                             observed={"clickhouse_inserts": 40.0, "clickhouse_rows": 25_000.0,
                                       "clickhouse_insert_seconds": 4.0, "gc_pauses": 3.0, "gc_seconds": 0.25})
    assert "touchpoint: 3 garbage-collector pauses, 0.25 s in all" in render(build_report([result], None, None, {}))


def test_render_states_how_busy_the_servers_were() -> None:
    result = ContenderResult("floor", "ok", events_per_s=1000.0, servers_busy={"tansu": 0.91, "clickhouse": 0.05})
    assert "floor: servers busy clickhouse 5.0%, tansu 91.0%" in render(build_report([result], None, None, {}))
