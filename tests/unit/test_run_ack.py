"""A run's acknowledgement records what Faust's per-message ``Consumer.ack`` would record.

The batching consumer acknowledges a run's offsets in one step and keeps no message alive for it
(agents/batching.py); Faust's committer reads ``_acked``, ``_acked_index`` and ``_n_acked``, so
they must come out exactly as if every message had been acknowledged one by one, including the
offsets Faust ignores (below the committed offset, already acknowledged, topics without acks).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiokafka.structs import ConsumerRecord
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.batching import BatchingApp, RunAck

TOPICS = ("web", "calls")
UNACKED_TOPIC = "not-acked"


def _consumer():  # type: ignore[no-untyped-def]
    """A consumer of a fresh app; nothing here talks to a broker."""
    app = BatchingApp("run-ack-test", broker="kafka://127.0.0.1:1", store="memory://")
    consumer = app.consumer
    app.topics._acking_topics.update(TOPICS)
    return consumer


def _record(topic: str, partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, None, b"", None, 0, 0, [])


def _message(topic: str, partition: int, offset: int) -> ConsumerMessage:
    return ConsumerMessage(topic, partition, offset, 0.0, 0, None, None, b"", None, tp=TP(topic, partition))


runs = st.lists(
    st.lists(st.tuples(st.sampled_from((*TOPICS, UNACKED_TOPIC)), st.integers(0, 1), st.integers(0, 30)),
             min_size=1, max_size=20),
    min_size=1, max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(runs=runs, committed=st.dictionaries(st.sampled_from([TP(t, p) for t in TOPICS for p in (0, 1)]),
                                            st.integers(0, 20)))
def test_a_run_is_acknowledged_as_faust_acknowledges_its_messages_one_by_one(
    runs: list[list[tuple[str, int, int]]], committed: dict[TP, int],
) -> None:
    by_run, by_message = _consumer(), _consumer()
    for consumer in (by_run, by_message):
        consumer._committed_offset.update(committed)
    for run in runs:
        ack = RunAck(by_run, [_record(*record) for record in run])
        by_run.outstanding_runs.add(ack)
        ack()
        assert ack not in by_run.outstanding_runs
        for record in run:
            by_message.ack(_message(*record))
    assert by_run._n_acked == by_message._n_acked
    assert all(type(tp) is TP for tp in by_run._acked)  # Faust reads tp.topic from these keys
    assert {tp: offsets for tp, offsets in by_run._acked.items() if offsets} == \
           {tp: offsets for tp, offsets in by_message._acked.items() if offsets}
    assert {tp: index for tp, index in by_run._acked_index.items() if index} == \
           {tp: index for tp, index in by_message._acked_index.items() if index}


def test_the_acknowledgement_holds_offsets_not_records() -> None:
    consumer = _consumer()
    ack = RunAck(consumer, [_record("web", 0, 5), _record("web", 0, 6), _record("calls", 1, 2)])
    assert ack.offsets == {TP("web", 0): [5, 6], TP("calls", 1): [2]}
    assert ack.size == 3
