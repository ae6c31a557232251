"""The operator subcommands of ``touchpoint``: replay, backfill, forget, doctor.

Kept apart from ``touchpoint/cli.py``, which registers them with :func:`add_parsers` and
:data:`COMMANDS`, so the worker's entry point stays small.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from touchpoint.settings import Settings, SettingsError

UNKNOWN_TABLE = 60  # ClickHouse error code: the schema is behind this release


def _quiet_kafka_clients() -> None:
    """The commands report Kafka failures themselves; the client's chatter would bury the report."""
    logging.getLogger("kafka").setLevel(logging.ERROR)


def _window(args: argparse.Namespace) -> tuple[int | None, int | None]:
    from touchpoint.ops.records import parse_time

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise SettingsError(f"--since/--until: {exc}") from None
    if since is not None and until is not None and since >= until:
        raise SettingsError("--since must be before --until")
    return since, until


def _reingest(settings: Settings, records: Iterable[dict[str, Any]], since: int | None, until: int | None,
              skip_stored: bool) -> int:
    """The part replay and backfill share: check, order, send with progress, summarise."""
    from clickhouse_driver.errors import ServerException
    from prometheus_client import CollectorRegistry

    from pipeline.suppression import SuppressionList
    from touchpoint.cli import ProgressLine
    from touchpoint.ops.reingest import ReingestError, describe, plan, send, stored_event_ids
    from touchpoint.ops.suppressions import load_suppression_list
    from touchpoint.runtime import Runtime
    from touchpoint.topics import ensure_topics

    if not settings.kafka_bootstrap_servers:
        raise SettingsError("TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS is not set")
    decoder = Runtime.create(settings, CollectorRegistry()).decoder
    try:
        suppression = load_suppression_list(settings.clickhouse) if settings.clickhouse_url else None
    except ServerException as exc:
        if exc.code == UNKNOWN_TABLE:
            raise SettingsError("ClickHouse has no suppressions table yet: run `touchpoint migrate`") from None
        raise
    if suppression is None:
        print("note: TOUCHPOINT_CLICKHOUSE_URL is not set, so erased customers cannot be skipped here; "
              "workers still drop them", file=sys.stderr)
    planned = plan(records, decoder, settings.topics, suppression or SuppressionList(), since, until)
    if skip_stored:
        if not settings.clickhouse_url:
            raise SettingsError("TOUCHPOINT_CLICKHOUSE_URL is needed to skip stored events (or pass --include-stored)")
        planned.drop_stored(stored_event_ids(settings.clickhouse, [m.event_id for m in planned.messages if m.touchpoint]))
    ensure_topics(settings)
    progress = ProgressLine("sent", len(planned.messages))
    try:
        sent = send(planned.messages, settings, progress.update)
    except ReingestError as exc:
        progress.done()
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 1
    progress.done()
    print(describe(planned, sent))
    return 0


def _files(paths: list[str]) -> Iterator[dict[str, Any]]:
    from touchpoint.ops.records import read_records

    for path in paths:
        yield from read_records(Path(path))


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.ops.records import RecordFileError
    from touchpoint.ops.sources import clickhouse_records

    _quiet_kafka_clients()
    since, until = _window(args)
    if args.from_clickhouse:
        if since is None or until is None:
            raise SettingsError("--from-clickhouse needs --since and --until")
        records: Iterable[dict[str, Any]] = clickhouse_records(settings.clickhouse, since, until)
    else:
        records = _files([args.file])
    try:
        return _reingest(settings, records, since, until, skip_stored=not (args.from_clickhouse or args.include_stored))
    except (OSError, RecordFileError) as exc:
        raise SettingsError(str(exc)) from None


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.ops.records import RecordFileError

    _quiet_kafka_clients()
    try:
        return _reingest(settings, _files(args.files), None, None, skip_stored=not args.include_stored)
    except (OSError, RecordFileError) as exc:
        raise SettingsError(str(exc)) from None


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.ops.forget import forget
    from touchpoint.runtime import identifier_policy

    _quiet_kafka_clients()
    if not settings.clickhouse_url or not settings.kafka_bootstrap_servers:
        raise SettingsError("forget needs TOUCHPOINT_CLICKHOUSE_URL and TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS")
    identifiers = []
    for item in args.identifier:
        id_type, sep, value = item.partition(":")
        if not sep or not value:
            raise SettingsError("--identifier takes type:value, e.g. email:someone@example.com")
        identifiers.append((id_type, value))
    started = time.monotonic()
    report = forget(settings, args.customer_id, identifiers, identifier_policy(settings))
    for line in report.lines():
        print(line)
    print(f"done in {time.monotonic() - started:.1f} s; restart the workers so no in-memory state remains")
    return 0 if report.complete else 1


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from touchpoint.ops.doctor import diagnose

    _quiet_kafka_clients()
    findings = diagnose(settings, args.metrics_url)
    for finding in findings:
        for line in finding.lines():
            print(line)
    problems = sum(not f.ok for f in findings)
    print(f"{problems} problem(s) found" if problems else "everything looks right")
    return 1 if problems else 0


INCLUDE_STORED_HELP = ("also send touchpoints whose event_id ClickHouse already holds (skipped by default; "
                       "--from-clickhouse always sends them)")


def add_parsers(sub: Any) -> None:
    """Register the operator subcommands on ``touchpoint``'s subparsers."""
    replay = sub.add_parser("replay", help="re-ingest a time range into the source topics (idempotent)")
    source = replay.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-clickhouse", action="store_true",
                        help="rebuild events from the touchpoints table (attributes are not stored: see README)")
    source.add_argument("--file", help="a JSON-lines or Avro object container file of events")
    replay.add_argument("--since", help="first event time to include (ISO-8601 with zone, or epoch ms)")
    replay.add_argument("--until", help="event time to stop before (ISO-8601 with zone, or epoch ms)")
    replay.add_argument("--include-stored", action="store_true", help=INCLUDE_STORED_HELP)
    backfill = sub.add_parser("backfill", help="ingest historical events from files, in event-time order")
    backfill.add_argument("files", nargs="+", help="JSON-lines or Avro object container files")
    backfill.add_argument("--include-stored", action="store_true", help=INCLUDE_STORED_HELP)
    forget = sub.add_parser("forget", help="erase a customer: rows, state, and a suppression entry")
    forget.add_argument("customer_id")
    forget.add_argument("--identifier", action="append", default=[], metavar="TYPE:VALUE",
                        help="also erase an identifier never linked to the customer (repeatable)")
    doctor = sub.add_parser("doctor", help="check Kafka, topics, ClickHouse schema and the metrics port")
    doctor.add_argument("--metrics-url", help="a worker's base URL (default http://127.0.0.1:<metrics_port>)")


COMMANDS = {"replay": cmd_replay, "backfill": cmd_backfill, "forget": cmd_forget, "doctor": cmd_doctor}
