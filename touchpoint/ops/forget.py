"""``touchpoint forget CUSTOMER_ID``: erase one customer from ClickHouse, Faust state and replays.

What makes up a customer: the customer key (the customer id, never hashed), every identifier
linked to it in ``identity_links`` (stored HMAC-ed when ``identifier_hmac_key`` is set), the
anonymous keys those identifiers routed events to before the link, and any identifiers the
operator names with ``--identifier type:value`` (cleaned and hashed here exactly as at ingest, so
a raw e-mail address finds its stored form). For all of them, in this order:

1. the suppression list gets their digests, so replays and late events are dropped from now on;
2. every MergeTree table with a ``customer_key`` column loses their rows by an
   ``ALTER TABLE ... DELETE`` mutation (``identity_links`` also by ``anonymous_key``), and
   ``dead_letters`` loses the rows keyed by them or whose JSON payload quotes the customer id or a
   named identifier; the command waits for the mutations and counts what is left;
3. the Faust table changelogs ``<app_id>-customers-changelog`` (customer and anonymous keys) and
   ``<app_id>-identity-changelog`` (identifier keys) get a tombstone per key, in the key's own
   partition (the same murmur2 partitioner Faust uses), so compaction and the next recovery drop
   the state.

A running worker still holds the customer's state in memory until it restarts or evicts it (see
the wiring notes in docs/runbooks.md): restart the workers after an erasure.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clickhouse_driver import Client
from kafka import KafkaConsumer, KafkaProducer

from pipeline.identifiers import CUSTOMER_ID, IdentifierPolicy, identifier_key
from pipeline.identity import anonymous_key
from pipeline.suppression import CUSTOMER, IDENTIFIER
from sinks.clickhouse import connect
from touchpoint.ops.suppressions import add_suppressions
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings, SettingsError

CUSTOMERS_TABLE = "customers"
IDENTITY_TABLE = "identity"
DEAD_LETTERS = "dead_letters"


def changelog_topic(app_id: str, table: str) -> str:
    """Faust's name for a table's changelog (``faust.tables.base.Collection._changelog_topic_name``)."""
    return f"{app_id}-{table}-changelog"


@dataclass
class Erasure:
    """The keys that make up one customer, in their stored form."""

    customer_key: str
    anonymous_keys: set[str] = field(default_factory=set)
    identifier_keys: set[str] = field(default_factory=set)
    payload_needles: set[str] = field(default_factory=set)  # JSON-quoted raw values in dead letters

    @property
    def customer_keys(self) -> set[str]:
        return {self.customer_key} | self.anonymous_keys


@dataclass
class ErasureReport:
    customer_key: str
    anonymous_keys: int
    identifier_keys: int
    suppressed: int
    rows_deleted: dict[str, int]
    rows_left: dict[str, int]
    tombstones: dict[str, int]
    missing_changelogs: list[str]

    @property
    def complete(self) -> bool:
        return not any(self.rows_left.values())

    def lines(self) -> list[str]:
        out = [f"erased customer {self.customer_key}: {self.anonymous_keys} anonymous key(s), "
               f"{self.identifier_keys} identifier(s)",
               f"suppression list: {self.suppressed} key digest(s) added"]
        for table, count in sorted(self.rows_deleted.items()):
            left = self.rows_left.get(table, 0)
            out.append(f"  {table}: {count} row(s) deleted" + (f", {left} STILL PRESENT" if left else ""))
        for topic, count in sorted(self.tombstones.items()):
            out.append(f"  {topic}: {count} key(s) tombstoned")
        for topic in self.missing_changelogs:
            out.append(f"  {topic}: no such topic (no worker has stored state yet), nothing to tombstone")
        if not self.complete:
            out.append("some rows are still present: a mutation did not finish in time; run the command again")
        return out


def collect(client: Client, database: str, customer_id: str, identifiers: Iterable[tuple[str, str]],
            policy: IdentifierPolicy) -> Erasure:
    """Resolve the customer and the named identifiers to every stored key that belongs to them."""
    customer_key = policy.clean_value(CUSTOMER_ID, customer_id)
    if customer_key is None:
        raise SettingsError("the customer id is empty or a placeholder value; nothing to erase")
    erasure = Erasure(customer_key, payload_needles={_quoted(customer_id.strip())})
    for id_type, raw_value in identifiers:
        stored, dropped = policy.normalise({id_type: raw_value})
        if dropped or not stored:
            raise SettingsError(f"--identifier {id_type}:...: not a usable {id_type} (unknown type, junk or invalid)")
        (clean_type, value), = stored.items()
        key = identifier_key(clean_type, value)
        erasure.identifier_keys.add(key)
        erasure.anonymous_keys.add(anonymous_key(key))
        cleaned = policy.clean_value(clean_type, raw_value)  # the spelling before hashing
        erasure.payload_needles.update({_quoted(raw_value.strip()), _quoted(cleaned or raw_value.strip())})
    for id_type, value, anon in client.execute(
            f"SELECT DISTINCT identifier_type, identifier_value, anonymous_key FROM {database}.identity_links "
            "WHERE customer_key = %(c)s AND decision = 'linked'", {"c": customer_key}):
        erasure.identifier_keys.add(identifier_key(id_type, value))
        if anon:
            erasure.anonymous_keys.add(anon)
    return erasure


def forget(settings: Settings, customer_id: str, identifiers: Iterable[tuple[str, str]],
           policy: IdentifierPolicy, mutation_timeout: float = 120.0) -> ErasureReport:
    target = settings.clickhouse
    database = target.database
    client = connect(target)
    try:
        erasure = collect(client, database, customer_id, identifiers, policy)
        suppressed = add_suppressions(
            client, database,
            [(CUSTOMER, key) for key in erasure.customer_keys] + [(IDENTIFIER, key) for key in erasure.identifier_keys])
        conditions = table_conditions(client, database, erasure)
        deleted = {table: _count(client, database, table, where, params) for table, (where, params) in conditions.items()}
        for table, (where, params) in conditions.items():
            if deleted[table]:
                client.execute(f"ALTER TABLE {database}.{table} DELETE WHERE {where}", params)
        _wait_for_mutations(client, database, [t for t, n in deleted.items() if n], mutation_timeout)
        left = {table: _count(client, database, table, where, params) for table, (where, params) in conditions.items()}
    finally:
        client.disconnect()
    tombstones, missing = write_tombstones(settings, {
        changelog_topic(settings.app_id, CUSTOMERS_TABLE): erasure.customer_keys,
        changelog_topic(settings.app_id, IDENTITY_TABLE): erasure.identifier_keys,
    })
    return ErasureReport(erasure.customer_key, len(erasure.anonymous_keys), len(erasure.identifier_keys),
                         suppressed, deleted, left, tombstones, missing)


def table_conditions(client: Client, database: str, erasure: Erasure) -> dict[str, tuple[str, dict[str, Any]]]:
    """``table -> (WHERE clause, parameters)`` for every table that can hold the customer.

    Found from the schema, not a fixed list, so a table added by a later migration with a
    ``customer_key`` column is erased too.
    """
    columns: dict[str, set[str]] = {}
    for table, column in client.execute(
            "SELECT table, name FROM system.columns WHERE database = %(db)s AND table IN "
            "(SELECT name FROM system.tables WHERE database = %(db)s AND engine LIKE '%%MergeTree')",
            {"db": database}):
        columns.setdefault(table, set()).add(column)
    keys = tuple(sorted(erasure.customer_keys))
    anon = tuple(sorted(erasure.anonymous_keys))
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for table, names in sorted(columns.items()):
        if "customer_key" in names:
            where = "customer_key IN %(keys)s"
            if "anonymous_key" in names and anon:
                where += " OR anonymous_key IN %(anon)s"
            out[table] = (where, {"keys": keys, "anon": anon})
    if DEAD_LETTERS in columns:
        needles = sorted(erasure.payload_needles)
        matches = " OR ".join(f"position(payload, %(n{i})s) > 0" for i in range(len(needles)))
        out[DEAD_LETTERS] = (f"key IN %(keys)s OR {matches}",
                             {"keys": keys, **{f"n{i}": needle for i, needle in enumerate(needles)}})
    return out


def write_tombstones(settings: Settings, keys_by_topic: dict[str, set[str]]) -> tuple[dict[str, int], list[str]]:
    """A null value per key on each existing changelog topic; returns counts and missing topics."""
    config = kafka_python_config(settings)
    consumer = KafkaConsumer(**config, client_id="touchpoint-forget")
    try:
        existing = consumer.topics()
    finally:
        consumer.close()
    present = {topic: keys for topic, keys in keys_by_topic.items() if topic in existing}
    missing = sorted(set(keys_by_topic) - set(present))
    failures: list[BaseException] = []
    producer = KafkaProducer(**config, acks="all", enable_idempotence=False, client_id="touchpoint-forget")
    try:
        for topic, keys in present.items():
            for key in sorted(keys):
                producer.send(topic, key=key.encode(), value=None).add_errback(failures.append)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} tombstone(s) were not acknowledged ({type(failures[0]).__name__}); "
                           "run the command again")
    return {topic: len(keys) for topic, keys in present.items()}, missing


def _count(client: Client, database: str, table: str, where: str, params: dict[str, Any]) -> int:
    return int(client.execute(f"SELECT count() FROM {database}.{table} WHERE {where}", params)[0][0])


def _wait_for_mutations(client: Client, database: str, tables: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while tables and time.monotonic() < deadline:
        pending = client.execute(
            "SELECT count() FROM system.mutations WHERE database = %(db)s AND table IN %(tables)s AND is_done = 0",
            {"db": database, "tables": tuple(tables)})[0][0]
        if not pending:
            return
        time.sleep(0.5)


def _quoted(value: str) -> str:
    """How the value appears inside a JSON payload; a bare substring would match longer ids."""
    return f'"{value}"'
