"""The ``touchpoint`` command: worker, migrate, generate, demo."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from touchpoint.logs import configure_logging
from touchpoint.ops.commands import COMMANDS as OPS_COMMANDS
from touchpoint.ops.commands import add_parsers as add_ops_parsers
from touchpoint.settings import Settings, SettingsError, load_settings

log = logging.getLogger("touchpoint")

NOT_CONFIGURED = (
    "{name} is not set. Point it at your servers, or run `touchpoint demo`, which starts "
    "a local broker and ClickHouse by itself."
)


def _require(settings: Settings) -> None:
    if not settings.kafka_bootstrap_servers:
        raise SettingsError(NOT_CONFIGURED.format(name="TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS"))
    if not settings.clickhouse_url:
        raise SettingsError(NOT_CONFIGURED.format(name="TOUCHPOINT_CLICKHOUSE_URL"))


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import faust

    from agents.app import build_app
    from sinks.migrations import latest_version, schema_version
    from touchpoint.gc_tuning import freeze_start_up, measure_pauses
    from touchpoint.readiness import follow_app
    from touchpoint.runtime import Runtime, use_worker_runtime
    from touchpoint.topics import ensure_topics

    _require(settings)
    use_worker_runtime(settings)
    version = schema_version(settings.clickhouse)
    if version < latest_version():
        raise SettingsError(
            f"ClickHouse schema is at version {version}, this worker needs {latest_version()}: "
            "run `touchpoint migrate` first"
        )
    ensure_topics(settings)
    runtime = Runtime.create(settings)
    runtime.metrics.serve(settings.metrics_port, ready=runtime.readiness.check)
    log.info("metrics on :%d/metrics; settings %s", settings.metrics_port, settings.describe())
    stages = build_app(runtime)
    follow_app(stages.app, runtime.readiness)
    worker = faust.Worker(stages.app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.spinner = None  # its terminal escapes would break JSON log lines
    freeze_start_up()
    measure_pauses(runtime.metrics.gc_pauses)
    worker.execute_from_commandline()
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.migrations import migrate

    if not settings.clickhouse_url:
        raise SettingsError(NOT_CONFIGURED.format(name="TOUCHPOINT_CLICKHOUSE_URL"))
    applied = migrate(settings.clickhouse)
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print("schema is up to date")
    return 0


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.synthetic import generate
    from touchpoint.generate import produce, write_manifest
    from touchpoint.registry import RegistryRefused, frame_scenario
    from touchpoint.security import kafka_python_config
    from touchpoint.topics import ensure_topics

    if not settings.kafka_bootstrap_servers:
        raise SettingsError(NOT_CONFIGURED.format(name="TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS"))
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000) - args.span_hours * 3600_000
    scenario = generate(customers=args.customers, seed=args.seed, start_ms=start_ms,
                        span_hours=args.span_hours)
    try:
        scenario = frame_scenario(scenario, settings, avro_only=args.format == "avro")
    except RegistryRefused as exc:
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 1
    ensure_topics(settings)
    progress = ProgressLine("produced", len(scenario.messages))
    sent = produce(scenario, settings.kafka_bootstrap_servers, settings.topic_prefix, args.rate, progress.update,
                   client_config=kafka_python_config(settings))
    progress.done()
    if args.manifest:
        write_manifest(scenario, Path(args.manifest))
    print(f"sent {sent} messages for {args.customers} customers (seed {args.seed})")
    return 0


def cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    """``schemas register``: the bundled Avro schemas under ``<topic>-value``, with a compatibility level."""
    from touchpoint.registry import RegistryRefused, register_with_settings

    if not settings.schema_registry_url:
        raise SettingsError("TOUCHPOINT_SCHEMA_REGISTRY_URL is not set: point it at the schema registry")
    compatibility = None if args.compatibility == "KEEP" else args.compatibility
    try:
        registrations = register_with_settings(settings, compatibility)
    except RegistryRefused as exc:
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 1
    for done in registrations:
        level = done.compatibility or "unchanged"
        print(f"{done.subject}: schema id {done.schema_id}, compatibility {level}")
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.bench.command import bench_command

    return bench_command(args, settings)


def cmd_faults(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.faults import run_faults_command

    return run_faults_command(settings, events=args.events, outage_seconds=args.outage_seconds,
                              seed=args.seed, negative_control=args.negative_control,
                              say=lambda line: print(line, file=sys.stderr, flush=True))


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.demo import run_demo

    return run_demo(settings, customers=args.customers, seed=args.seed, hold=args.hold)


class ProgressLine:
    """One self-rewriting line on a terminal, plain lines every 10% elsewhere (CI logs)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, max(total, 1)
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self._last_decile = -1

    def update(self, done: int) -> None:
        fraction = min(done / self.total, 1.0)
        elapsed = time.monotonic() - self.started
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        text = f"{self.label}: {done}/{self.total} ({fraction:.0%}), about {eta:.0f} s left"
        if self.tty:
            sys.stderr.write("\r" + text.ljust(70))
            sys.stderr.flush()
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="touchpoint", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a Faust worker (needs Kafka and ClickHouse settings)")
    sub.add_parser("migrate", help="apply the ClickHouse DDL (idempotent)")
    gen = sub.add_parser("generate", help="produce synthetic multi-channel traffic into Kafka")
    gen.add_argument("--customers", type=int, default=200)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--rate", type=float, default=None, help="events per second (default: as fast as possible)")
    gen.add_argument("--span-hours", type=int, default=48, help="event time spans this many hours before now")
    gen.add_argument("--start-ms", type=int, default=None, help="event time of the first event (epoch ms)")
    gen.add_argument("--manifest", help="write the scenario's ground truth as JSON here")
    gen.add_argument("--format", choices=("mixed", "avro"), default="mixed",
                     help="mixed: mostly JSON, some Avro (default); avro: every valid message as "
                          "Confluent-framed Avro. With TOUCHPOINT_SCHEMA_REGISTRY_URL set, the schemas "
                          "are registered and frames carry the registry's ids")
    schemas_cmd = sub.add_parser("schemas", help="manage the Avro schemas in the schema registry")
    schemas_sub = schemas_cmd.add_subparsers(dest="schemas_command", required=True)
    register = schemas_sub.add_parser(
        "register", help="register schemas/avro under <topic>-value subjects (idempotent)")
    register.add_argument("--compatibility", default="FULL_TRANSITIVE", type=str.upper,
                          help="level set on each subject first: BACKWARD, FORWARD, FULL (each also "
                               "_TRANSITIVE) or NONE; KEEP leaves it (default FULL_TRANSITIVE)")
    demo = sub.add_parser("demo", help="the whole thing on a local broker and ClickHouse")
    demo.add_argument("--customers", type=int, default=200)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--hold", action=argparse.BooleanOptionalAction, default=None,
                      help="keep the servers up after the summary until Ctrl-C (default: when on a terminal)")
    from touchpoint.bench.command import add_arguments as add_bench_arguments

    add_bench_arguments(sub.add_parser(
        "bench", help="measure throughput, latency and memory against baselines on the same data"))
    add_ops_parsers(sub)
    faults = sub.add_parser("faults", help="fault-injection suite on a local stack: kills, outage, rebalance; prints lost/duplicated")
    faults.add_argument("--events", type=int, default=100_000, help="messages to produce (default 100000)")
    faults.add_argument("--outage-seconds", type=float, default=30.0, help="how long ClickHouse stays down")
    faults.add_argument("--seed", type=int, default=5)
    faults.add_argument("--negative-control", action="store_true",
                        help="run workers with the UNSAFE ack-before-write switch; passes when loss is caught")
    return root


COMMANDS = {"worker": cmd_worker, "migrate": cmd_migrate, "generate": cmd_generate, "demo": cmd_demo}
COMMANDS["schemas"] = cmd_schemas
COMMANDS["bench"] = cmd_bench
COMMANDS["faults"] = cmd_faults
COMMANDS.update(OPS_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings)
        return COMMANDS[args.command](args, settings)
    except SettingsError as exc:
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
