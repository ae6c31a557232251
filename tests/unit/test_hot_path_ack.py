"""The order a batch's acknowledgement keeps: forwarded records delivered, state durable and its
changelog submitted, offsets acked.

A back-stitching hand-over carries an anonymous key's state to its customer while the staged
state deletes that key; if the deletion reached the changelog before the hand-over reached the
customers topic, a crash would lose the anonymous history."""

from __future__ import annotations

import asyncio

import pytest

from agents.hot_path import StageResult, acknowledgement


class _Changelog:
    """The tables' outbox: records its submissions in the order of events."""

    def __init__(self, order: list[object]) -> None:
        self.order = order

    async def send(self) -> list[object]:
        self.order.append("changelog submitted")
        return []


def test_state_is_made_durable_only_after_the_hand_overs_are_delivered() -> None:
    async def scenario() -> None:
        order: list[object] = []
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        result = StageResult({}, durable=lambda: order.append("durable"))
        acknowledging = asyncio.ensure_future(acknowledgement(lambda: order.append("acked"), result, [delivery], _Changelog(order))())
        await asyncio.sleep(0.05)
        assert order == []  # still waiting for the broker
        delivery.set_result(None)
        await asyncio.wait_for(acknowledging, 1)
        assert order == ["durable", "changelog submitted", "acked"]

    asyncio.run(scenario())


def test_a_failed_hand_over_makes_nothing_durable_and_acknowledges_nothing() -> None:
    async def scenario() -> None:
        order: list[object] = []
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_exception(ConnectionError("broker gone"))
        result = StageResult({}, durable=lambda: order.append("durable"))
        with pytest.raises(ConnectionError):
            await acknowledgement(lambda: order.append("acked"), result, [delivery], _Changelog(order))()
        assert order == []

    asyncio.run(scenario())


def test_a_batch_that_forwarded_nothing_is_acknowledged_at_once() -> None:
    async def scenario() -> None:
        order: list[object] = []
        await acknowledgement(lambda: order.append("acked"), StageResult({}, durable=lambda: order.append("durable")), [],
                              _Changelog(order))()
        assert order == ["durable", "changelog submitted", "acked"]

    asyncio.run(scenario())
