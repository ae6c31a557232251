"""Create Touchpoint's topics up front, with the partition count the deployment plans for."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.model import CHANNELS
from touchpoint.security import kafka_python_config
from touchpoint.settings import Settings

log = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    topics = settings.topics
    return [topics.channel(c) for c in CHANNELS] + [
        topics.identity, topics.identifiers, topics.customers, topics.dlq, topics.alerts,
    ]


def ensure_topics(settings: Settings) -> list[str]:
    """Create the missing topics; returns the names created."""
    admin = KafkaAdminClient(**kafka_python_config(settings), client_id="touchpoint-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [name for name in topic_names(settings) if name not in existing]
        if wanted:
            try:
                admin.create_topics([NewTopic(name, settings.partitions, 1) for name in wanted])
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", ", ".join(wanted))
        return wanted
    finally:
        admin.close()
