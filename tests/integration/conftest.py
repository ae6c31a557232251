"""Real servers for integration tests: the embedded local stack, or the configured one.

One broker and one ClickHouse serve the whole session; each test gets its own topic prefix and
database, so tests never see each other's data. Setting TOUCHPOINT_KAFKA_BOOTSTRAP_SERVERS and
TOUCHPOINT_CLICKHOUSE_URL runs the same tests against existing servers (the compose stack).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from touchpoint.localstack import LocalStack, local_stack
from touchpoint.settings import ClickHouseTarget, Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


@pytest.fixture
def settings(stack: LocalStack, tmp_path: Path) -> Settings:
    """Settings isolated to this test: unique topics, consumer group, database and state dir."""
    suffix = uuid.uuid4().hex[:8]
    base = ClickHouseTarget.from_url(stack.clickhouse_url)
    password = f":{base.password}" if base.password else ":"
    clickhouse_url = f"clickhouse://{base.user}{password}@{base.host}:{base.port}/cx_{suffix}"
    return Settings(
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        clickhouse_url=clickhouse_url,
        topic_prefix=f"t{suffix}",
        app_id=f"touchpoint-{suffix}",
        data_dir=str(tmp_path / "worker"),
        partitions=4,
        session_timeout_seconds=6.0,
        sink_flush_seconds=0.3,
        log_level=os.environ.get("TOUCHPOINT_TEST_LOG_LEVEL", "info"),
    )
