"""The outbox batches forwarded records per topic-partition without changing where they land or
their order: the partition is the one aiokafka's default partitioner picks for the key, and a
run's acknowledgement gets the delivery of every batch that holds its records."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from agents.outbox import Outbox, key_partition, murmur2
from tests.fake_producer import FakeFaustProducer

def test_key_partition_is_the_default_partitioners() -> None:
    partitioner = DefaultPartitioner()
    for n in range(500):
        key = f"customer-{n}".encode()
        assert key_partition(key, 4) == partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3])


@given(st.binary(max_size=300))
def test_murmur2_is_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_records_leave_in_one_batch_per_topic_partition_in_the_order_added() -> None:
    async def scenario() -> None:
        faust = FakeFaustProducer()
        outbox = Outbox(faust, 4)
        keys = [f"k{n}".encode() for n in range(40)]
        for n, key in enumerate(keys):
            outbox.add("customers", key, b"v%d" % n, 1_700_000_000_500 + n * 1000, [("tp-op", b"merge")] if n == 7 else None)
        outbox.add("identifiers", b"k0", None, None)
        delivered = await outbox.send()
        faust.drain()
        assert len(delivered) == len(faust.sent) == len({key_partition(k, 4) for k in keys}) + 1
        await asyncio.gather(*delivered)
        for topic, partition, records in faust.sent:
            if topic == "identifiers":
                assert [(key, value) for key, value, _, _ in records] == [(b"k0", None)]
                continue
            expected = [(k, b"v%d" % n, 1_700_000_000_500 + n * 1000, [("tp-op", b"merge")] if n == 7 else [])
                        for n, k in enumerate(keys) if key_partition(k, 4) == partition]
            assert records == expected
        assert await outbox.send() == []  # a run that forwarded nothing waits for nothing

    asyncio.run(scenario())


def test_later_runs_join_the_open_batch_until_it_is_drained() -> None:
    async def scenario() -> None:
        faust = FakeFaustProducer()
        outbox = Outbox(faust, 1)
        outbox.add("customers", b"key", b"run 1", None)
        first = await outbox.send()
        outbox.add("customers", b"key", b"run 2", None)
        second = await outbox.send()
        assert second == first and len(faust.submitted) == 1  # one batch, awaited by both runs
        faust.drain()
        outbox.add("customers", b"key", b"run 3", None)
        third = await outbox.send()
        assert third != first
        faust.drain()
        assert [[value for _, value, _, _ in records] for _, _, records in faust.sent] == [[b"run 1", b"run 2"], [b"run 3"]]

    asyncio.run(scenario())


def test_a_full_batch_is_followed_by_another_and_a_run_awaits_both() -> None:
    async def scenario() -> None:
        faust = FakeFaustProducer(max_batch_size=512)
        outbox = Outbox(faust, 1)
        for n in range(30):
            outbox.add("customers", b"key", b"x" * 60 + b"%02d" % n, None)
        outbox.add("customers", b"key", b"x" * 4096, None)  # alone in a batch; the broker judges its size
        delivered = await outbox.send()
        faust.drain()
        assert len(delivered) == len(faust.sent) > 2
        values = [value for _, _, records in faust.sent for _, value, _, _ in records]
        assert values == [b"x" * 60 + b"%02d" % n for n in range(30)] + [b"x" * 4096]
        assert faust.sent[-1][2][0][1] == b"x" * 4096 and len(faust.sent[-1][2]) == 1

    asyncio.run(scenario())


async def delivered(topic: str, keys: list[bytes], partitions: int) -> tuple[FakeFaustProducer, Outbox]:
    """An outbox whose records of ``keys`` are on the broker: what ``mark_ends`` finds before a commit."""
    faust = FakeFaustProducer()
    outbox = Outbox(faust, partitions)
    for key in keys:
        outbox.add(topic, key, b"state", None)
    await outbox.send()
    faust.drain()
    return faust, outbox


def test_mark_ends_puts_a_batch_of_one_tombstone_after_each_partition_written() -> None:
    async def scenario() -> None:
        keys = [f"c{n}".encode() for n in range(12)]
        faust, outbox = await delivered("customers-changelog", keys, 4)
        written = {key_partition(k, 4) for k in keys}
        marking = asyncio.ensure_future(outbox.mark_ends(b"\x00end"))
        await asyncio.sleep(0)
        assert not marking.done()  # it waits for the markers' delivery
        faust.drain()
        await marking
        markers = faust.sent[len(written):]
        assert sorted(p for _, p, _ in markers) == sorted(written)
        assert all(records == [(b"\x00end", None, records[0][2], [])] for _, _, records in markers)
        await outbox.mark_ends(b"\x00end")  # nothing written since: no markers
        assert faust.submitted == []

    asyncio.run(scenario())


async def marks_again(faust: FakeFaustProducer, outbox: Outbox) -> None:
    """After a failed ``mark_ends``, the next call marks the partition again."""
    marking = asyncio.ensure_future(outbox.mark_ends(b"\x00end"))
    await asyncio.sleep(0)
    assert [(t, p) for t, p, _, _ in faust.submitted] == [("identity-changelog", 0)]
    faust.drain()
    await marking


def test_mark_ends_that_fails_is_tried_again_at_the_next_call() -> None:
    async def scenario() -> None:
        faust, outbox = await delivered("identity-changelog", [b"k"], 1)
        marking = asyncio.ensure_future(outbox.mark_ends(b"\x00end"))
        await asyncio.sleep(0)
        faust.submitted[0][3].set_exception(RuntimeError("broker gone"))
        faust.submitted = []
        with pytest.raises(RuntimeError):  # so the commit is skipped
            await marking
        await marks_again(faust, outbox)

    asyncio.run(scenario())


def test_mark_ends_that_cannot_submit_is_tried_again_at_the_next_call() -> None:
    async def scenario() -> None:
        faust, outbox = await delivered("identity-changelog", [b"k"], 1)
        submit = faust.aiokafka.send_batch

        async def refused(*args: object, **kwargs: object) -> None:
            raise RuntimeError("producer closed")

        faust.aiokafka.send_batch = refused  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):  # so the commit is skipped
            await outbox.mark_ends(b"\x00end")
        faust.aiokafka.send_batch = submit  # type: ignore[method-assign]
        await marks_again(faust, outbox)

    asyncio.run(scenario())
