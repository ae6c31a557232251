"""Contenders as running processes: how each is started, observed and stopped.

Two kinds: a peer (``python -m touchpoint.bench.peers.<name>``, reporting progress on stdout) and
Touchpoint (one or more real ``touchpoint worker`` processes, observed only through their metrics
endpoints). Both answer the same questions, so :mod:`touchpoint.bench.measure` treats them alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from touchpoint.bench.figures import Sample
from touchpoint.bench.peers import CONFIG_ENV, PeerConfig, parse_progress
from touchpoint.bench.profile import start_py_spy
from touchpoint.harness import WorkerProcess, metric_value
from touchpoint.localstack import terminate
from touchpoint.settings import Settings

STOP_GRACE_SECONDS = 15.0
# The worker's counters of finished messages: accepted events and dead-lettered ones.
PROCESSED_METRICS = ("cx_events_processed_total", "cx_events_invalid_total")
# What the workers report about their own run: the ClickHouse sink, and garbage-collector pauses.
OBSERVED_METRICS = {
    "cx_sink_batch_duration_seconds_count": "clickhouse_inserts",
    "cx_sink_batch_duration_seconds_sum": "clickhouse_insert_seconds",
    "cx_sink_batch_rows_sum": "clickhouse_rows",
    "cx_gc_pause_seconds_count": "gc_pauses",
    "cx_gc_pause_seconds_sum": "gc_seconds",
}
# A full scrape renders every metric family in the worker (about 8% of its CPU at five a second):
# progress is asked once a second, and for the PROCESSED_METRICS series only (/metrics?name[]=).
SCRAPE_SECONDS = 1.0
# From this share of the total on, progress is asked at every poll of the bench (0.2 s): the
# window ends at the first scrape that sees the total, which at one a second came up to a second
# after the last event (half a second on average: 5% of a 9-second window), while the peers report
# the moment they reach the total with their own clock.
NEAR_END_SHARE = 0.9


def scrape_due(since_last: float, count: int, total: int | None) -> bool:
    """Whether to scrape the workers' progress now, ``since_last`` seconds after the last scrape."""
    return since_last >= SCRAPE_SECONDS or (total is not None and count >= NEAR_END_SHARE * total)


class Contender(Protocol):
    name: str
    log_path: Path

    def pids(self) -> list[int]: ...

    def poll(self) -> list[Sample]:
        """Progress observed since the last call, oldest first (empty before there is any)."""

    def exited(self) -> int | None:
        """An exit code if any of its processes has ended, else None."""

    def observed(self) -> dict[str, float]:
        """Figures the contender exposes about itself at the end of its run (may be empty)."""

    def stop(self) -> None: ...


class PeerProcess:
    """A peer in its own process; a thread turns its stdout into progress samples."""

    def __init__(self, name: str, module: str, config: PeerConfig, log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        env = dict(os.environ)
        env[CONFIG_ENV] = config.to_env()
        self.process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in self.process.stdout:
                parsed = parse_progress(line.decode(errors="replace"))
                if parsed is None:
                    log.write(line)
                else:
                    with self._lock:
                        self._samples.append(Sample(*parsed))

    def pids(self) -> list[int]:
        return [self.process.pid]

    def poll(self) -> list[Sample]:
        with self._lock:
            samples, self._samples = self._samples, []
        return samples

    def exited(self) -> int | None:
        return self.process.poll()

    def observed(self) -> dict[str, float]:
        return {}

    def stop(self) -> None:
        terminate(self.process, STOP_GRACE_SECONDS)
        self._reader.join(5)


class TouchpointWorkers:
    """``count`` real workers of one app, each with its own metrics port and data directory."""

    def __init__(self, name: str, settings: Settings, count: int, workdir: Path, profile: bool = False,
                 total: int | None = None) -> None:
        """``total``: the units the run ends at, if the bench times it (see NEAR_END_SHARE)."""
        self.name = name
        self.total = total
        self._count = 0
        self.workers = [
            WorkerProcess.start(settings.with_overrides(data_dir=str(workdir / f"{name}-{index}")),
                                workdir / f"{name}-{index}.log")
            for index in range(count)
        ]
        self.log_path = self.workers[0].log_path
        self._scraped_at = 0.0
        self.profiles = [workdir / f"{name}-{index}.pyspy.txt" for index in range(count)] if profile else []
        self._profilers = [start_py_spy(worker.process.pid, path) for worker, path in zip(self.workers, self.profiles)]

    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self.workers]

    def poll(self) -> list[Sample]:
        """One scrape of every worker (at most every :data:`SCRAPE_SECONDS`, except near the end):
        the sum of their counters."""
        if not scrape_due(time.monotonic() - self._scraped_at, self._count, self.total):
            return []
        self._scraped_at = time.monotonic()
        total = 0.0
        for worker in self.workers:
            try:
                exposition = worker.scrape(PROCESSED_METRICS)
            except OSError:
                return []  # not serving yet
            total += sum(metric_value(exposition, name) for name in PROCESSED_METRICS)
        self._count = int(total)
        return [Sample(time.time(), self._count)]

    def observed(self) -> dict[str, float]:
        """The workers' own figures, summed: how much of the run went to inserts and to the
        garbage collector."""
        totals = dict.fromkeys(OBSERVED_METRICS.values(), 0.0)
        for worker in self.workers:
            try:
                exposition = worker.scrape()
            except OSError:
                return {}
            for metric, key in OBSERVED_METRICS.items():
                totals[key] += metric_value(exposition, metric)
        return totals

    def exited(self) -> int | None:
        for worker in self.workers:
            code = worker.process.poll()
            if code is not None:
                return code
        return None

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop(STOP_GRACE_SECONDS * 2)
        for profiler in self._profilers:  # py-spy writes its file once its target has exited
            if _still_running(profiler, STOP_GRACE_SECONDS):
                terminate(profiler, STOP_GRACE_SECONDS)


def _still_running(process: subprocess.Popen[bytes], wait: float) -> bool:
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        return True
    return False
