"""``touchpoint migrate``: apply the versioned DDL in ``schemas/clickhouse`` exactly once each.

A migration is a file ``NNNN_name.sql``; its statements are separated by ``;`` at a line end and
may name ``{database}``. Applied versions are recorded in ``schema_migrations``, so running the
command again does nothing, and a worker can check that the schema it needs is there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_driver import Client

from schemas import CLICKHOUSE_DIR
from sinks.clickhouse import connect
from touchpoint.settings import ClickHouseTarget

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, database: str) -> list[str]:
        text = "\n".join(
            line for line in self.path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip().replace("{database}", database) for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def available(directory: Path = CLICKHOUSE_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    return found


def latest_version() -> int:
    return max(m.version for m in available())


def applied_versions(client: Client, database: str) -> set[int]:
    exists = client.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'schema_migrations'",
        {"db": database},
    )[0][0]
    if not exists:
        return set()
    return {row[0] for row in client.execute(f"SELECT version FROM {database}.schema_migrations")}


def schema_version(target: ClickHouseTarget) -> int:
    """The highest applied migration, 0 for an empty database."""
    client = connect(target, database="default")
    try:
        return max(applied_versions(client, target.database), default=0)
    finally:
        client.disconnect()


def migrate(target: ClickHouseTarget) -> list[Migration]:
    """Create the database if needed and apply what is missing; returns what was applied."""
    client = connect(target, database="default")
    try:
        database = target.database
        client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.execute(
            f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree() ORDER BY version"
        )
        done = applied_versions(client, database)
        applied = []
        for migration in available():
            if migration.version in done:
                continue
            for statement in migration.statements(database):
                client.execute(statement)
            client.execute(
                f"INSERT INTO {database}.schema_migrations (version, name) VALUES",
                [(migration.version, migration.name)],
            )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration)
        return applied
    finally:
        client.disconnect()
