"""The rules behind the bench's numbers: throughput window, CPU cost, percentiles, state size."""

from __future__ import annotations

import pytest

from touchpoint.bench.figures import (
    Sample,
    cpu_per_thousand,
    interpolate,
    latency_summary,
    percentile,
    ratio,
    throughput_window,
)
from touchpoint.bench.contenders import scrape_due
from touchpoint.bench.peers import Progress, parse_progress
from touchpoint.bench.state_size import summarise


def test_window_starts_at_first_progress_and_ends_at_total() -> None:
    samples = [Sample(10.0, 0), Sample(11.0, 0), Sample(12.0, 500), Sample(13.0, 1500), Sample(14.0, 2500),
               Sample(15.0, 2500)]
    window = throughput_window(samples, total=2500)
    assert window is not None and window.complete
    assert (window.start.at, window.end.at) == (12.0, 14.0)
    assert window.events == 2000  # the 500 done before the first sample are not credited
    assert window.rate == pytest.approx(1000.0)


def test_window_ends_where_the_total_was_crossed_between_two_samples() -> None:
    """A counter that overshoots the total: the end is read at the rate of the last interval, not
    at the sample that first saw the total."""
    window = throughput_window([Sample(10.0, 100), Sample(11.0, 1100), Sample(12.0, 2100), Sample(13.0, 2600)],
                               total=2500)
    assert window is not None and window.complete
    assert window.end == Sample(12.8, 2500)
    assert window.rate == pytest.approx(2400 / 2.8)


def test_touchpoint_progress_is_scraped_at_every_poll_near_the_end() -> None:
    """A counter stops at the total, so the window ends at the first scrape that sees it: once a
    second, that was up to a second after the last event."""
    assert not scrape_due(0.2, count=8_999, total=10_000)
    assert scrape_due(1.0, count=8_999, total=10_000)
    assert scrape_due(0.2, count=9_000, total=10_000)
    assert not scrape_due(0.2, count=9_999, total=None)  # the latency run's worker: no total to reach


def test_window_of_unfinished_run_ends_at_last_sample() -> None:
    window = throughput_window([Sample(1.0, 10), Sample(3.0, 410)], total=1000)
    assert window is not None and not window.complete
    assert window.rate == pytest.approx(200.0)


def test_no_window_without_progress_and_no_rate_in_one_sample() -> None:
    assert throughput_window([Sample(1.0, 0), Sample(2.0, 0)], total=10) is None
    assert throughput_window([], total=10) is None
    single = throughput_window([Sample(1.0, 10)], total=10)
    assert single is not None and single.rate is None


def test_interpolate_between_and_outside_samples() -> None:
    points = [(0.0, 1.0), (2.0, 3.0), (4.0, 3.0)]
    assert interpolate(points, 1.0) == pytest.approx(2.0)
    assert interpolate(points, -5.0) == 1.0
    assert interpolate(points, 9.0) == 3.0
    assert interpolate([], 1.0) is None


def test_cpu_per_thousand_over_the_window_only() -> None:
    window = throughput_window([Sample(10.0, 1), Sample(20.0, 10_001)], total=10_001)
    assert window is not None
    cpu = [(0.0, 0.0), (10.0, 5.0), (20.0, 7.0), (30.0, 100.0)]  # start-up and shutdown excluded
    assert cpu_per_thousand(cpu, window) == pytest.approx(0.2)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_latency_summary_keys_and_order() -> None:
    summary = latency_summary([0.1] * 90 + [1.0] * 9 + [5.0])
    assert summary == {"p50_s": 0.1, "p95_s": 1.0, "p99_s": 1.0, "max_s": 5.0}


def test_ratio_is_none_when_either_side_is_missing() -> None:
    assert ratio(10.0, 5.0) == 2.0
    assert ratio(None, 5.0) is None
    assert ratio(10.0, None) is None
    assert ratio(10.0, 0.0) is None


def test_progress_lines_first_every_step_and_total(capfd: pytest.CaptureFixture[str]) -> None:
    progress = Progress(total=25, step=10)
    for _ in range(25):
        progress.add()
    progress.add()  # past the total: nothing more
    counts = [parse_progress(line)[1] for line in capfd.readouterr().out.splitlines()]
    assert counts == [1, 11, 21, 25]
    assert progress.done


def test_parse_progress_ignores_other_output() -> None:
    assert parse_progress("progress 1700000000.5 42\n") == (1700000000.5, 42)
    assert parse_progress("[2026-01-01] INFO progress of something") is None
    assert parse_progress("progress soon 3") is None


def test_state_size_takes_latest_value_per_key_and_drops_deleted() -> None:
    records = [(b"a", b"x" * 10), (b"b", b"y" * 30), (b"a", b"x" * 20), (b"c", b"z"), (b"c", None)]
    size = summarise(records)
    assert size is not None
    assert (size.customers, size.mean_bytes, size.max_bytes) == (2, 25.0, 30)
    assert summarise([(b"a", None)]) is None


def test_top_frames_self_and_total_shares() -> None:
    from touchpoint.bench.profile import top_frames

    collapsed = "\n".join([
        "main;loop;decode 6",
        "main;loop;insert 3",
        "main;loop 1",
        "not a stack line",
    ])
    shares = {share.frame: share for share in top_frames(collapsed)}
    assert shares["decode"].self_share == pytest.approx(0.6)
    assert shares["loop"].self_share == pytest.approx(0.1)
    assert shares["loop"].total_share == pytest.approx(1.0)
    assert [share.frame for share in top_frames(collapsed, limit=1)] == ["decode"]
    assert top_frames("") == []
