"""Schemas as data: Avro (``avro/*.avsc``) for the event contract, ClickHouse DDL (``clickhouse/*.sql``)."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
AVRO_DIR = SCHEMA_DIR / "avro"
CLICKHOUSE_DIR = SCHEMA_DIR / "clickhouse"
