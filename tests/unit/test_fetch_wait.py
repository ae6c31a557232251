"""The worker's consumer waits at the broker as long as its setting says, not Faust's fixed 1500 ms.

On the local broker an empty fetch is held for the whole wait even when records arrive, so the
value is paid on every hop through an internal topic (see agents.batching._FetchingThread)."""

from __future__ import annotations

import asyncio

import pytest

from agents.batching import BatchingApp
from touchpoint.settings import SettingsError, load_settings


def test_the_setting_reaches_the_aiokafka_consumer() -> None:
    async def scenario() -> int:
        app = BatchingApp("fetch-wait-test", broker="kafka://127.0.0.1:1")
        app.fetch_max_wait_ms = load_settings({"TOUCHPOINT_FETCH_MAX_WAIT_MS": "123"}).fetch_max_wait_ms
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # created, never started
        try:
            return consumer._fetch_max_wait_ms
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == 123


def test_the_default_is_short_and_nonsense_is_refused() -> None:
    assert load_settings({}).fetch_max_wait_ms == 100
    with pytest.raises(SettingsError, match="FETCH_MAX_WAIT_MS"):
        load_settings({"TOUCHPOINT_FETCH_MAX_WAIT_MS": "0"})
