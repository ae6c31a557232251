"""Watch one running contender until it has done the whole dataset, times out or dies.

Progress, CPU time and peak RSS are sampled from outside on a fixed interval; the figures are
computed afterwards by :mod:`touchpoint.bench.figures`, so the rules are the same for everyone.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from touchpoint.bench.contenders import Contender
from touchpoint.bench.figures import Sample, Window, cpu_per_thousand, interpolate, throughput_window
from touchpoint.bench.procstat import cpu_seconds, peak_rss_bytes

SAMPLE_SECONDS = 0.2


@dataclass
class ContenderResult:
    """One contender's figures; ``status`` is ok, timeout, failed or skipped, with ``detail`` why."""

    name: str
    status: str
    events_per_s: float | None = None
    window_s: float | None = None
    window_events: int | None = None
    cpu_s_per_1000: float | None = None
    cpu_busy: float | None = None  # CPU seconds per second of window: 1.0 is one core saturated
    peak_rss_mb: float | None = None
    processes: int = 1
    detail: str = ""
    profile: list[dict[str, object]] | None = None  # top frames by self time, when profiled
    observed: dict[str, float] | None = None  # what the contender reports about itself (Touchpoint's sink)
    servers_busy: dict[str, float] | None = None  # CPU seconds per second of window of broker, ClickHouse

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def skipped(name: str, why: str) -> ContenderResult:
    return ContenderResult(name, "skipped", detail=why)


def measure(
    contender: Contender,
    total: int,
    timeout: float,
    on_progress: Callable[[int], None] | None = None,
    servers: Mapping[str, int] | None = None,
) -> ContenderResult:
    """Sample ``contender`` until its progress reaches ``total``; always stops it before returning.

    ``servers`` (name to pid: the embedded broker and ClickHouse) are sampled too, so the result
    says how busy they were over the same window: the first sign that one of them is the limit.
    """
    samples: list[Sample] = []
    cpu_points: list[tuple[float, float]] = []
    server_points: dict[str, list[tuple[float, float]]] = {name: [] for name in servers or {}}
    peak_rss: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    status, detail = "ok", ""
    observed: dict[str, float] = {}
    try:
        while True:
            _sample_process(contender, cpu_points, peak_rss)
            _sample_servers(servers or {}, server_points)
            for sample in contender.poll():
                if not samples or sample.count > samples[-1].count:
                    samples.append(sample)
            if samples and samples[-1].count >= total:
                _sample_process(contender, cpu_points, peak_rss)
                _sample_servers(servers or {}, server_points)
                break
            code = contender.exited()
            if code is not None:
                status, detail = "failed", f"exited with code {code}; see {contender.log_path}"
                break
            if time.monotonic() > deadline:
                done = samples[-1].count if samples else 0
                status, detail = "timeout", f"{done}/{total} done after {timeout:.0f} s; see {contender.log_path}"
                break
            if on_progress is not None and samples:
                on_progress(samples[-1].count)
            time.sleep(SAMPLE_SECONDS)
        observed = contender.observed()
    finally:
        contender.stop()
    result = _result(contender, total, samples, cpu_points, peak_rss, status, detail)
    result.observed = observed or None
    window = throughput_window(samples, total)
    if window is not None and window.seconds > 0:
        busy = {name: _busy(points, window) for name, points in server_points.items()}
        result.servers_busy = {name: value for name, value in busy.items() if value is not None} or None
    return result


def _sample_servers(servers: Mapping[str, int], points: dict[str, list[tuple[float, float]]]) -> None:
    now = time.time()
    for name, pid in servers.items():
        used = cpu_seconds(pid)
        if used is not None:
            points[name].append((now, used))


def _busy(points: list[tuple[float, float]], window: Window) -> float | None:
    if len(points) < 2:
        return None
    before, after = interpolate(points, window.start.at), interpolate(points, window.end.at)
    if before is None or after is None:
        return None
    return round((after - before) / window.seconds, 3)


def _sample_process(contender: Contender, cpu_points: list[tuple[float, float]], peak_rss: dict[int, int]) -> None:
    now = time.time()
    used = [cpu_seconds(pid) for pid in contender.pids()]
    if all(value is not None for value in used):
        cpu_points.append((now, sum(value for value in used if value is not None)))
    for pid in contender.pids():
        rss = peak_rss_bytes(pid)
        if rss is not None:
            peak_rss[pid] = max(rss, peak_rss.get(pid, 0))


def _result(
    contender: Contender,
    total: int,
    samples: list[Sample],
    cpu_points: list[tuple[float, float]],
    peak_rss: dict[int, int],
    status: str,
    detail: str,
) -> ContenderResult:
    result = ContenderResult(contender.name, status, processes=len(contender.pids()), detail=detail)
    if peak_rss:
        result.peak_rss_mb = round(max(peak_rss.values()) / 2**20, 1)
    window = throughput_window(samples, total)
    if window is None:
        result.detail = result.detail or "no progress observed"
        return result
    result.window_s = round(window.seconds, 3)
    result.window_events = window.events
    rate = window.rate
    result.events_per_s = round(rate, 1) if rate is not None else None
    cost = cpu_per_thousand(cpu_points, window)
    result.cpu_s_per_1000 = round(cost, 4) if cost is not None else None
    if cost is not None and rate is not None:
        result.cpu_busy = round(cost * rate / 1000.0, 3)
    if window.rate is None and status == "ok":
        result.detail = "finished between two samples: too few events to time"
    return result
