"""``touchpoint bench`` end to end: servers, data, every contender in turn, latency, the report.

Each contender gets a fresh topic prefix, consumer group / app id, ClickHouse database and state
directory, and its own copy of the same produced messages; it runs alone, so contenders never
compete with each other for the machine. Touchpoint runs last among the throughput contenders and
is followed by the latency run, so a change to the worker is measured on a warmed-up machine.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pipeline.model import CHANNELS
from sinks.migrations import migrate
from touchpoint.bench.contenders import Contender, PeerProcess, TouchpointWorkers
from touchpoint.bench.dataset import Dataset, build_dataset, produce_dataset
from touchpoint.bench.latency import measure_latency
from touchpoint.bench.measure import ContenderResult, measure, skipped
from touchpoint.bench.peers import PeerConfig
from touchpoint.bench.profile import top_frames
from touchpoint.bench.report import build_report
from touchpoint.bench.state_size import changelog_topic, read_changelog
from touchpoint.harness import wait_until
from touchpoint.settings import ClickHouseTarget, Settings
from touchpoint.topics import ensure_topics

PEERS = {
    "ceiling": "touchpoint.bench.peers.ceiling",
    "domain": "touchpoint.bench.peers.domain",
    "floor": "touchpoint.bench.peers.floor",
    "naive": "touchpoint.bench.peers.naive",
    "quix": "touchpoint.bench.peers.quix",
}
CONTENDERS = ("ceiling", "domain", "floor", "naive", "quix", "touchpoint")
QUIX_MISSING = "quixstreams is not installed: pip install -e '.[bench]' to run the Quix Streams peer"
JOIN_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class BenchOptions:
    events: int = 200_000
    partitions: int = 4
    workers: tuple[int, ...] = (1,)
    contenders: tuple[str, ...] = CONTENDERS
    seed: int = 7
    timeout: float = 900.0
    latency_seconds: float = 20.0
    latency_rate: float | None = None  # None: half of the one-worker throughput
    profile: bool = False
    servers: dict[str, int] = field(default_factory=dict)
    workdir: Path = Path(".touchpoint/bench")


Say = Callable[[str], None]
Progress = Callable[[str, int], Callable[[int], None]]


def run_bench(options: BenchOptions, base: Settings, say: Say, progress: Progress,
              servers: dict[str, int] | None = None) -> dict[str, Any]:
    """Run every selected contender on ``base``'s servers and return the report (see report.py).

    ``servers`` maps the embedded servers' names to their pids, to report how busy they were.
    """
    options = replace(options, servers=dict(servers or {}))
    commit_at_start = _commit()
    options.workdir.mkdir(parents=True, exist_ok=True)
    say(f"generating {options.events} events (seed {options.seed})")
    dataset = build_dataset(options.events, options.seed)
    results: list[ContenderResult] = []
    latency = state = None
    for name in options.contenders:
        if name == "touchpoint":
            continue
        if name == "quix" and importlib.util.find_spec("quixstreams") is None:
            say(f"quix: skipped, {QUIX_MISSING}")
            results.append(skipped("quix", QUIX_MISSING))
            continue
        results.append(_run_peer(name, dataset, _isolated(base, options, name), options, say, progress))
    if "touchpoint" in options.contenders:
        for workers in options.workers:
            name = "touchpoint" if workers == 1 else f"touchpoint_{workers}w"
            settings = _isolated(base, options, name)
            result = _run_touchpoint(name, workers, dataset, settings, options, say, progress)
            results.append(result)
            if workers == 1 and result.status == "ok":
                summary = read_changelog(settings.kafka_bootstrap_servers, changelog_topic(settings.app_id))
                state = summary.to_dict() if summary is not None else None
        latency = _run_latency(dataset, base, options, results, say, progress)
    setup = _setup(options, dataset, base)
    if setup["commit"] != commit_at_start:  # the tree moved during the run: say which code ran first
        setup["commit_at_start"] = commit_at_start
    return build_report(results, latency, state, setup)


def _isolated(base: Settings, options: BenchOptions, name: str) -> Settings:
    """Settings no other contender shares: topics, group / app id, database, state directory."""
    suffix = uuid.uuid4().hex[:8]
    target = ClickHouseTarget.from_url(base.clickhouse_url)
    password = f":{target.password}" if target.password else ":"
    scheme = "clickhouses" if target.secure else "clickhouse"
    return base.with_overrides(
        topic_prefix=f"bench{suffix}",
        app_id=f"bench-{name.replace('_', '-')}-{suffix}",
        clickhouse_url=f"{scheme}://{target.user}{password}@{target.host}:{target.port}/bench_{suffix}",
        data_dir=str(options.workdir / f"{name}-{suffix}"),
        partitions=options.partitions,
    )


def _produce(dataset: Dataset, settings: Settings, name: str, progress: Progress) -> None:
    produce_dataset(dataset, settings, progress(f"{name}: producing", dataset.total))


def _run_peer(name: str, dataset: Dataset, settings: Settings, options: BenchOptions, say: Say,
              progress: Progress) -> ContenderResult:
    _produce(dataset, settings, name, progress)
    topics = settings.topics
    config = PeerConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics={**{topics.channel(c): c for c in CHANNELS}, topics.identity: None},
        group_id=settings.app_id,
        total=dataset.total,
        partitions=settings.partitions,
        clickhouse_url=settings.clickhouse_url,
        state_dir=settings.data_dir,
    )
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    peer = PeerProcess(name, PEERS[name], config, options.workdir / f"{name}.log")
    return _measured(peer, dataset.total, options, say, progress)


def _run_touchpoint(name: str, workers: int, dataset: Dataset, settings: Settings, options: BenchOptions,
                    say: Say, progress: Progress) -> ContenderResult:
    migrate(settings.clickhouse)
    _produce(dataset, settings, name, progress)
    contender = TouchpointWorkers(name, settings, workers, options.workdir, profile=options.profile and workers == 1,
                                  total=dataset.touchpoint_units)
    result = _measured(contender, dataset.touchpoint_units, options, say, progress)
    for path in contender.profiles:
        if path.exists():
            result.profile = [share.to_dict() for share in top_frames(path.read_text())]
            say(f"{name}: profile in {path}")
    return result


def _measured(contender: Contender, total: int, options: BenchOptions, say: Say, progress: Progress) -> ContenderResult:
    result = measure(contender, total, options.timeout, progress(f"{contender.name}: processed", total),
                     servers=options.servers)
    say(f"{contender.name}: {result.status}, {result.events_per_s or 'na'} events/s"
        + (f" ({result.detail})" if result.detail else ""))
    return result


def _run_latency(dataset: Dataset, base: Settings, options: BenchOptions, results: list[ContenderResult],
                 say: Say, progress: Progress) -> dict[str, Any] | None:
    """At half of one worker's measured maximum (or ``latency_rate``), on a fresh prefix and database."""
    touchpoint = next((r for r in results if r.name == "touchpoint"), None)
    if options.latency_seconds <= 0:
        return None
    if options.latency_rate is not None:
        rate = options.latency_rate
    elif touchpoint is None or touchpoint.events_per_s is None:
        say("latency: skipped, no one-worker touchpoint throughput to take half of (run --workers with 1)")
        return None
    else:
        rate = touchpoint.events_per_s / 2
    settings = _isolated(base, options, "latency")
    migrate(settings.clickhouse)
    ensure_topics(settings)
    contender = TouchpointWorkers("touchpoint-latency", settings, 1, options.workdir)
    try:
        _wait_joined(contender, settings)
        say(f"latency: offering {rate:.0f} events/s for {options.latency_seconds:.0f} s")
        run = measure_latency(dataset, settings, rate, options.latency_seconds,
                              progress("latency: visible", int(rate * options.latency_seconds)))
    finally:
        contender.stop()
    return run.to_dict()


def _wait_joined(contender: TouchpointWorkers, settings: Settings) -> None:
    """Warm-up: one event through the whole pipeline, so the group join is not timed as latency."""
    warm = build_dataset(50, seed=1)
    produce_dataset(warm, settings)
    wanted = warm.touchpoint_units

    def through() -> bool:
        if contender.exited() is not None:
            raise RuntimeError(f"the latency worker exited; see {contender.log_path}")
        return any(sample.count >= wanted for sample in contender.poll())

    wait_until(through, JOIN_TIMEOUT_SECONDS, interval=0.5, describe="the latency worker processing its warm-up")


def _setup(options: BenchOptions, dataset: Dataset, base: Settings) -> dict[str, Any]:
    return {
        "events": options.events,
        "partitions": options.partitions,
        "workers": list(options.workers),
        "seed": options.seed,
        "dataset": dataset.describe(),
        "latency_seconds": options.latency_seconds,
        "latency_rate": options.latency_rate,
        "broker": base.kafka_bootstrap_servers,
        "clickhouse": ClickHouseTarget.from_url(base.clickhouse_url).masked_url(),
        "machine": machine(),
        "commit": _commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "kernel": platform.release()}


def _commit() -> str | None:
    """The measured commit, marked ``-dirty`` when the worker's code differs from it in the tree."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=root)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "agents", "pipeline", "sinks", "touchpoint"],
                               capture_output=True, text=True, timeout=5, cwd=root)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
