"""The ``touchpoint bench`` command line: options, servers, progress, JSON and the printed table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

from touchpoint.bench.profile import py_spy_binary
from touchpoint.bench.report import render
from touchpoint.bench.run import CONTENDERS, BenchOptions, run_bench
from touchpoint.localstack import local_stack
from touchpoint.settings import Settings, SettingsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="messages to pre-produce (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions per source topic (default 4)")
    parser.add_argument("--workers", default="1",
                        help="Touchpoint worker counts to measure, comma-separated, e.g. 1,2 (default 1)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"which to run, comma-separated (default {','.join(CONTENDERS)})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each contender may take (default 900)")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="how long to offer half load for the latency figure; 0 skips it (default 20)")
    parser.add_argument("--latency-rate", type=float, default=None,
                        help="offer this many events/s instead of half the measured one-worker rate "
                             "(compares latency across builds at one load; needs no throughput run)")
    parser.add_argument("--profile", action="store_true",
                        help="attach py-spy to the one-worker Touchpoint run (slows it a little; see docs/performance.md)")
    parser.add_argument("--output", default="bench.json", help="where to write the JSON report (default bench.json)")
    parser.add_argument("--workdir", default=None, help="logs and state of the run (default <data_dir>/bench)")


def options_from(args: argparse.Namespace, settings: Settings) -> BenchOptions:
    contenders = tuple(name.strip() for name in args.contenders.split(",") if name.strip())
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        raise SettingsError(f"--contenders: unknown {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    try:
        workers = tuple(int(part) for part in args.workers.split(","))
    except ValueError:
        raise SettingsError(f"--workers: expected counts like 1,2, got {args.workers!r}") from None
    if not workers or min(workers) < 1:
        raise SettingsError("--workers: every count must be at least 1")
    if args.events < 100:
        raise SettingsError("--events: at least 100, or there is nothing to time")
    if args.partitions < 1:
        raise SettingsError("--partitions: at least 1")
    if args.latency_rate is not None and args.latency_rate <= 0:
        raise SettingsError("--latency-rate: events/s must be positive")
    if args.profile and py_spy_binary() is None:
        raise SettingsError("--profile needs py-spy: .venv/bin/pip install py-spy")
    workdir = Path(args.workdir) if args.workdir else Path(settings.data_dir) / "bench"
    return BenchOptions(events=args.events, partitions=args.partitions, workers=workers, contenders=contenders,
                        seed=args.seed, timeout=args.timeout, latency_seconds=args.latency_seconds,
                        latency_rate=args.latency_rate, profile=args.profile, workdir=workdir.resolve())


def bench_command(args: argparse.Namespace, settings: Settings) -> int:
    """Start (or use) the servers, run the bench, write JSON, print the table; the summary line last."""
    from touchpoint.cli import ProgressLine

    options = options_from(args, settings)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its per-connection chatter buries the progress

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def progress(label: str, total: int) -> Callable[[int], None]:
        return ProgressLine(label, total).update

    with local_stack(settings.kafka_bootstrap_servers or None, settings.clickhouse_url or None) as stack:
        say(f"servers: kafka {stack.kafka_bootstrap_servers}, workdir {options.workdir}")
        base = settings.with_overrides(kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
                                       clickhouse_url=stack.clickhouse_url)
        servers = {name: server.process.pid for name, server in stack.servers.items()}
        report = run_bench(options, base, say, progress, servers)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {args.output}")
    print(render(report), flush=True)
    return 0
