"""The BI contract on a real ClickHouse: documented queries return sane rows, the docs match the schema.

A fresh database is filled by the real pure pipeline over a synthetic scenario (decode, identity
decisions, the customer step, channel figures) and written with the real ClickHouse writer after
the real migrations. No Kafka and no worker: the rows are the ones a worker would write, in
seconds. Then every query in deploy/clickhouse/queries runs as a BI tool would send it, and the
data dictionary in docs/bi.md is compared with system.columns.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from pipeline.channel_health import ChannelHealth
from pipeline.channel_scores import channel_report
from pipeline.config import load_model_config
from pipeline.customer import CustomerState, CustomerStep, alert_row
from pipeline.dead_letters import dead_letter_headers, dead_letter_row
from pipeline.decode import Decoder
from pipeline.identifiers import identifier_key, primary_identifier
from pipeline.identity import CONFIRMED, anonymous_key, decide_link
from pipeline.model import DeadLetter, Event, IdentityLink
from pipeline.schema_registry import BundledSchemas
from pipeline.synthetic import IDENTITY_TOPIC, Scenario, generate
from sinks.clickhouse import TABLE_COLUMNS, ClickHouseWriter, connect
from sinks.migrations import available, migrate
from touchpoint.localstack import CLICKHOUSE_BINARY, LocalStack, start_clickhouse
from touchpoint.settings import ClickHouseTarget

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUERIES = sorted((ROOT / "deploy" / "clickhouse" / "queries").glob("*.sql"))
DICTIONARY = ROOT / "docs" / "bi.md"
BI_USER_FILE = ROOT / "deploy" / "clickhouse" / "users.d" / "bi-readonly.xml"
CURRENT_USERS_D = ROOT / "deploy" / "clickhouse" / "current" / "users.d"
BI_DEV_PASSWORD = "bi-readonly-dev"  # the development default the file's hash is made from
START_MS = 1_793_491_200_000  # Monday 2026-10-26 00:00 UTC: three whole weeks follow
SPAN_HOURS = 21 * 24
DAY_MS = 86_400_000


# -- the data: what workers would have written for one scenario ------------------------------------


class OfflinePipeline:
    """The worker's stages in one process and in stream order, minus Kafka: enough for BI rows."""

    def __init__(self) -> None:
        model = load_model_config(None)
        self.decoder = Decoder(BundledSchemas())
        self.step = CustomerStep(model)
        self.health = ChannelHealth(model)
        self.states: dict[str, CustomerState] = {}
        self.linked: dict[str, str] = {}  # identifier key -> customer key
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def run(self, scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
        now_ms = scenario.manifest.end_ms + DAY_MS
        for offset, message in enumerate(scenario.messages):
            channel = None if message.topic == IDENTITY_TOPIC else ("call" if message.topic == "calls" else message.topic)
            result = self.decoder.decode(message.value, channel, now_ms)
            if isinstance(result, DeadLetter):
                headers = dead_letter_headers(result, f"touchpoints.{message.topic}", 0, offset, at=now_ms / 1000)
                self.rows["dead_letters"].append(dead_letter_row(headers, message.key, message.value))
            elif isinstance(result, IdentityLink):
                self._link(result.customer_id, result.event_id, result.occurred_at_ms, result.identifiers)
            else:
                self._event(result)
        for key, state in self.states.items():  # event time moves on: every journey closes
            closed = self.step.close_if_idle(state, key, scenario.manifest.end_ms + 10 * DAY_MS)
            if closed is not None:
                self._collect(closed[1].rows)
        self.rows["channel_scores"] = channel_report(self.health.take_figures(), version=1).rows
        return self.rows

    def _event(self, event: Event) -> None:
        if event.customer_id:
            key = event.customer_id
            self._link(key, event.event_id, event.occurred_at_ms, event.identifiers)
        else:
            id_key = identifier_key(*primary_identifier(event.identifiers))
            key = self.linked.get(id_key) or anonymous_key(id_key)
        state, emitted = self.step.apply_event(self.states.get(key), key, event)
        self.states[key] = state
        self._collect(emitted.rows)
        if not emitted.duplicate:
            for alert in self.health.observe(event, emitted.touchpoint_score):
                self.rows["alerts"].append(alert_row(alert, alert.occurred_at_ms))

    def _link(self, customer: str, event_id: str, occurred_at_ms: int, identifiers: dict[str, str]) -> None:
        for id_type, value in identifiers.items():
            id_key = identifier_key(id_type, value)
            link = {"customer_id": customer, "event_id": event_id, "occurred_at_ms": occurred_at_ms}
            decision = decide_link(id_key, self.linked.get(id_key), link)
            if decision.store:
                self.linked[id_key] = decision.customer_key
            if decision.decision != CONFIRMED:
                self.rows["identity_links"].append(decision.row)

    def _collect(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        for table, table_rows in rows.items():
            self.rows[table].extend(table_rows)


@pytest.fixture(scope="module")
def pipeline_rows() -> dict[str, list[dict[str, Any]]]:
    return OfflinePipeline().run(generate(customers=300, seed=21, start_ms=START_MS, span_hours=SPAN_HOURS))


def fill(target: ClickHouseTarget, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Migrate, then write the rows of every table the schema has; returns rows written per table."""
    migrate(target)
    writer = ClickHouseWriter(target)
    written = {}
    try:
        for table, table_rows in rows.items():
            if table in TABLE_COLUMNS:
                writer.insert(table, table_rows)
                written[table] = len(table_rows)
    finally:
        writer.client.disconnect()
    return written


@pytest.fixture(scope="module")
def bi_database(stack: LocalStack, pipeline_rows) -> Iterator[tuple[Client, str, dict[str, int]]]:
    base = ClickHouseTarget.from_url(stack.clickhouse_url)
    target = ClickHouseTarget(base.host, base.port, f"cx_bi_{uuid.uuid4().hex[:8]}", base.user, base.password,
                              base.secure)
    written = fill(target, pipeline_rows)
    client = connect(target)
    try:
        yield client, target.database, written
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {target.database}")
        client.disconnect()


def run_documented(client: Client, database: str, path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Run a query file as a BI tool would, against this test's database instead of ``cx``."""
    sql = re.sub(r"\bcx\.", f"{database}.", path.read_text())
    rows, columns = client.execute(sql, with_column_types=True)
    names = [name for name, _ in columns]
    return names, [dict(zip(names, row)) for row in rows]


def test_the_data_covers_every_table(bi_database):
    _, _, written = bi_database
    for table in ("touchpoints", "journeys", "customer_scores", "identity_links", "dead_letters", "channel_scores",
                  "alerts"):
        assert written.get(table, 0) > 0, f"the scenario wrote no {table} rows"


def test_every_analyst_question_has_a_query():
    names = {path.stem for path in QUERIES}
    assert {"nps_by_channel_weekly", "channel_switch_before_complaint", "customers_at_risk_by_segment",
            "cost_of_friction"} <= names


def test_nps_by_channel_weekly(bi_database):
    client, database, _ = bi_database
    _, rows = run_documented(client, database, QUERIES_BY_NAME["nps_by_channel_weekly"])
    assert rows
    assert {row["week"].weekday() for row in rows} == {0}, "weeks start on Monday"
    assert len({row["week"] for row in rows}) >= 3
    for row in rows:
        assert row["responses"] == row["promoters"] + row["detractors"] + _passives(client, database, row)
        assert -100 <= row["nps"] <= 100
    total = sum(row["responses"] for row in rows)
    nps_answers = client.execute(f"SELECT count() FROM {database}.touchpoints FINAL WHERE feedback_kind = 'nps'")[0][0]
    assert total == nps_answers, "every answer counted once"


def _passives(client: Client, database: str, row: dict[str, Any]) -> int:
    return client.execute(
        f"SELECT count() FROM {database}.customer_touchpoints WHERE feedback_kind = 'nps' "
        "AND feedback_score BETWEEN 7 AND 8 AND toMonday(occurred_at) = %(week)s AND channel = %(channel)s",
        {"week": row["week"], "channel": row["channel"]},
    )[0][0]


def test_channel_switch_before_complaint(bi_database):
    client, database, _ = bi_database
    _, rows = run_documented(client, database, QUERIES_BY_NAME["channel_switch_before_complaint"])
    assert rows
    for row in rows:
        assert row["channel_switches"] >= 1 and len(set(row["channels"])) >= 2
        assert row["first_switch_at"] <= row["first_complaint_at"]
        assert row["complaint_channel"] in row["channels"]
        assert 0 <= row["journey_score"] <= 100
    assert len({row["journey_id"] for row in rows}) == len(rows)


def test_customers_at_risk_by_segment(bi_database):
    client, database, _ = bi_database
    _, rows = run_documented(client, database, QUERIES_BY_NAME["customers_at_risk_by_segment"])
    assert rows
    customers = client.execute(f"SELECT count() FROM {database}.customer_latest")[0][0]
    at_risk = client.execute(f"SELECT countIf(at_risk = 1) FROM {database}.customer_latest")[0][0]
    assert sum(row["customers"] for row in rows) == customers
    assert sum(row["customers_at_risk"] for row in rows) == at_risk > 0, "the scenario scripts unhappy customers"
    for row in rows:
        assert row["primary_channel"] in ("call", "web", "store", "app")
        assert row["identity"] in ("known", "anonymous")
        assert 0 <= row["at_risk_percent"] <= 100 and 0 <= row["mean_score"] <= 100


def test_cost_of_friction(bi_database):
    client, database, _ = bi_database
    _, rows = run_documented(client, database, QUERIES_BY_NAME["cost_of_friction"])
    assert rows
    signals = {row["signal"] for row in rows}
    assert {"web.error", "call.wait"} & signals
    assert not signals & {"base", "purchase", "call.resolved"}, "only negative components are friction"
    for row in rows:
        assert row["touchpoints_hit"] >= row["journeys_hit"] > 0
        assert row["points_lost"] > 0
        assert 0 <= row["purchase_percent_hit"] <= 100 and 0 <= row["purchase_percent_without_friction"] <= 100
        assert 0 <= row["lost_purchases"] <= row["journeys_hit"] and row["lost_revenue"] >= 0
    assert any(row["lost_revenue"] > 0 for row in rows)


# -- the same queries on current ClickHouse (the compose stack's), in-process --------------------------


def current_profile_settings() -> dict[str, str]:
    """What deploy/clickhouse/current/users.d sets for the writer's profile on current ClickHouse."""
    root = ET.parse(CURRENT_USERS_D / "views-compatibility.xml").getroot()
    return {setting.tag: setting.text or "" for setting in root.find("profiles/default")}


@pytest.fixture(scope="module")
def current_engine(tmp_path_factory, pipeline_rows):
    """chdb (a current ClickHouse engine) with the real migrations and the same rows."""
    session_module = pytest.importorskip("chdb.session")
    engine = session_module.Session(str(tmp_path_factory.mktemp("chdb")))
    for name, value in {**current_profile_settings(), "output_format_json_quote_64bit_integers": "0"}.items():
        engine.query(f"SET {name} = {value}")
    engine.query("CREATE DATABASE IF NOT EXISTS cx")
    for migration in available():
        for statement in migration.statements("cx"):
            engine.query(statement)
    for table, table_rows in pipeline_rows.items():
        if table in TABLE_COLUMNS and table_rows:
            columns = TABLE_COLUMNS[table]
            body = b"\n".join(orjson.dumps({c: _json_value(row[c]) for c in columns}) for row in table_rows)
            engine.query(f"INSERT INTO cx.{table} ({', '.join(columns)}) FORMAT JSONEachRow\n{body.decode()}")
    yield engine
    engine.close()


def _json_value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _comparable(value: Any) -> Any:
    """One spelling for both engines: times as text, floats to 2 places (Float32 noise), lists."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, (list, tuple)):
        return [_comparable(item) for item in value]
    return value


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_documented_query_gives_the_same_answer_on_current_clickhouse(bi_database, current_engine, path):
    client, database, _ = bi_database
    _, old_rows = run_documented(client, database, path)
    result = orjson.loads(current_engine.query(path.read_text(), "JSONCompact").bytes())
    new_rows = [[_comparable(value) for value in row] for row in result["data"]]
    assert new_rows == [[_comparable(value) for value in row.values()] for row in old_rows]


# -- the read-only BI user of deploy/clickhouse, on the ClickHouse 18.16 installed here ----------------


@pytest.fixture(scope="module")
def server_with_bi_user(tmp_path_factory, pipeline_rows) -> Iterator[ClickHouseTarget]:
    """A ClickHouse of our own whose users.d holds the shipped BI user file, and database cx filled.

    The embedded server's users.xml has a development user of the same name; ``replace`` makes the
    shipped definition win whole, as it would on a server without one.
    """
    if not Path(CLICKHOUSE_BINARY).exists():
        pytest.skip("clickhouse-server is not installed here")
    workdir = tmp_path_factory.mktemp("bi-user")
    users_d = workdir / "clickhouse" / "users.d"
    users_d.mkdir(parents=True)
    tree = ET.parse(BI_USER_FILE)
    tree.getroot().find("users/bi").set("replace", "replace")
    tree.write(users_d / BI_USER_FILE.name)
    server = start_clickhouse(workdir)
    try:
        admin = ClickHouseTarget("127.0.0.1", server.port, "cx", "default", "")
        fill(admin, pipeline_rows)
        yield ClickHouseTarget("127.0.0.1", server.port, "cx", "bi", BI_DEV_PASSWORD)
    finally:
        server.stop()


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_bi_user_runs_each_documented_query(server_with_bi_user, path):
    client = connect(server_with_bi_user)
    try:
        rows = client.execute(path.read_text())
    finally:
        client.disconnect()
    assert rows


@pytest.mark.parametrize("statement, code", [
    ("INSERT INTO cx.suppressions (token, kind) VALUES ('t', 'customer')", 164),  # READONLY
    ("CREATE TABLE cx.scratch (x UInt8) ENGINE = Memory", 164),
    ("ALTER TABLE cx.touchpoints DELETE WHERE 1", 164),
    ("SELECT count() FROM default.bi_probe", 291),  # DATABASE_ACCESS_DENIED
], ids=["insert", "create", "mutation", "other-database"])
def test_bi_user_cannot_write_or_leave_cx(server_with_bi_user, statement, code):
    admin = connect(replace(server_with_bi_user, user="default", password=""), database="default")
    admin.execute("CREATE TABLE IF NOT EXISTS default.bi_probe (x UInt8) ENGINE = Memory")
    admin.disconnect()
    client = connect(server_with_bi_user)
    try:
        with pytest.raises(ServerException) as refused:
            client.execute(statement)
    finally:
        client.disconnect()
    assert refused.value.code == code


def test_bi_user_cannot_lift_its_limits(server_with_bi_user):
    """readonly=1 locks settings, so the profile's time and size limits hold: SET is refused, and
    settings a client sends with a query are not applied (18.16 ignores them, current releases
    refuse them, hence the Grafana exception in deploy/clickhouse/current/)."""
    client = Client(host=server_with_bi_user.host, port=server_with_bi_user.port, user="bi",
                    password=BI_DEV_PASSWORD, database="cx",
                    settings={"max_execution_time": 3600, "max_result_rows": 0, "readonly": 0})
    try:
        with pytest.raises(ServerException) as refused:
            client.execute("SET max_execution_time = 3600")
        assert refused.value.code == 164
        try:
            effective = dict(client.execute(
                "SELECT name, value FROM system.settings "
                "WHERE name IN ('max_execution_time', 'max_result_rows', 'readonly')"))
        except ServerException as exc:
            assert exc.code == 164  # refused outright: just as good
        else:
            assert effective == {"max_execution_time": "60", "max_result_rows": "1000000", "readonly": "1"}
    finally:
        client.disconnect()


# -- the data dictionary ------------------------------------------------------------------------------


def documented_columns() -> dict[str, set[str]]:
    """``#### `name` `` headings of docs/bi.md, each followed by a table of ``| `column` | ...`` rows."""
    documented: dict[str, set[str]] = {}
    current: str | None = None
    for line in DICTIONARY.read_text().splitlines():
        if line.startswith("#"):
            heading = re.match(r"^####\s+`(\w+)`", line)
            current = heading.group(1) if heading else None
            if current is not None:
                documented[current] = set()
            continue
        column = re.match(r"^\|\s*`(\w+)`\s*\|", line)
        if column and current is not None:
            documented[current].add(column.group(1))
    return documented


def test_dictionary_lists_every_column_in_clickhouse(bi_database):
    client, database, _ = bi_database
    actual: dict[str, set[str]] = defaultdict(set)
    for table, column in client.execute(
        "SELECT table, name FROM system.columns WHERE database = %(db)s", {"db": database}
    ):
        actual[table].add(column)
    documented = documented_columns()
    missing = {table: sorted(columns - documented.get(table, set())) for table, columns in actual.items()}
    missing = {table: columns for table, columns in missing.items() if columns}
    assert not missing, f"docs/bi.md does not describe these columns: {missing}"
    stale = {table: sorted(columns - actual.get(table, set())) for table, columns in documented.items()}
    stale = {table: columns for table, columns in stale.items() if columns}
    assert not stale, f"docs/bi.md describes columns ClickHouse does not have: {stale}"


def test_dictionary_gives_meaning_and_unit_for_every_column():
    for line in DICTIONARY.read_text().splitlines():
        if re.match(r"^\|\s*`\w+`\s*\|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            assert len(cells) == 4 and all(cells), f"want | column | type | meaning | unit |: {line}"


QUERIES_BY_NAME = {path.stem: path for path in QUERIES}
