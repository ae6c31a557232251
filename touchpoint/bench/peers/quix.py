"""The Quix Streams peer: the same job as the naive Faust peer, written the Quix way.

Decode per source topic (the decoder needs the channel), concatenate, ``group_by`` customer,
keyed state per customer (RocksDB with a changelog topic), and a ``BatchingSink`` that writes
each checkpoint's rows with one columnar ClickHouse insert per partition batch.
Needs the optional ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import tempfile
from typing import Any

from quixstreams import Application, State
from quixstreams.models.topics import Topic, TopicAdmin, TopicManager
from quixstreams.sinks import BatchingSink, SinkBatch

from touchpoint.bench.peers import PeerConfig, Progress
from touchpoint.bench.peers.job import (
    connect_and_create,
    decode_record,
    insert_rows,
    new_decoder,
    row_of,
    update_state,
)

COMMIT_INTERVAL_SECONDS = 1.0
# Kafka's broker defaults, for brokers that describe a topic without its configs.
KAFKA_TOPIC_DEFAULTS = {"retention.ms": "604800000", "retention.bytes": "-1"}


class BrokerDefaultsTopicManager(TopicManager):
    """Fills in Kafka's defaults for topic configs the broker does not report.

    Tansu answers DescribeConfigs with no entries, and ``group_by`` derives its repartition
    topic's retention from the source topics' ``retention.ms``, failing with a KeyError without it.
    This only touches topic set-up, never the per-message path.
    """

    def _configure_topic(self, topic: Topic, broker_topic: Topic) -> Topic:
        topic = super()._configure_topic(topic, broker_topic)
        for name, value in KAFKA_TOPIC_DEFAULTS.items():
            topic.broker_config.extra_config.setdefault(name, value)
        return topic


class ClickHouseSink(BatchingSink):
    """One insert per flushed partition batch; counts the rows as done once they are written."""

    def __init__(self, clickhouse_url: str, progress: Progress) -> None:
        super().__init__()
        self._clickhouse_url = clickhouse_url
        self._progress = progress
        self._client: Any = None

    def setup(self) -> None:
        self._client = connect_and_create(self._clickhouse_url)

    def write(self, batch: SinkBatch) -> None:
        rows = [item.value for item in batch]
        insert_rows(self._client, rows)
        self._progress.add(len(rows))


def build_app(config: PeerConfig) -> Application:
    app = Application(
        broker_address=config.bootstrap_servers,
        consumer_group=config.group_id,
        auto_offset_reset="earliest",
        commit_interval=COMMIT_INTERVAL_SECONDS,
        state_dir=config.state_dir or tempfile.mkdtemp(prefix="bench-quix-"),
        loglevel="INFO",
        topic_manager=BrokerDefaultsTopicManager(TopicAdmin(broker_address=config.bootstrap_servers),
                                                 consumer_group=config.group_id),
    )
    decoder = new_decoder()
    progress = Progress(config.total)

    def decoder_for(channel: str | None):
        def decode(raw: bytes) -> dict[str, Any] | None:
            record = decode_record(decoder, raw, channel)
            if record is None:
                progress.add()
            return record
        return decode

    frames = [
        app.dataframe(app.topic(name, value_deserializer="bytes", key_deserializer="bytes")).apply(decoder_for(channel))
        for name, channel in config.topics.items()
    ]
    sdf = frames[0]
    for frame in frames[1:]:
        sdf = sdf.concat(frame)
    sdf = sdf.filter(lambda record: record is not None)
    sdf = sdf.group_by(lambda record: record["customer_key"], name="customer")

    def count_touch(record: dict[str, Any], state: State) -> tuple[Any, ...]:
        customer = update_state(state.get("customer"), record)
        state.set("customer", customer)
        return row_of(record, customer)

    sdf = sdf.apply(count_touch, stateful=True)
    sdf.sink(ClickHouseSink(config.clickhouse_url, progress))
    return app


def main() -> None:
    build_app(PeerConfig.from_env()).run()


if __name__ == "__main__":
    main()
