#!/usr/bin/env bash
# Create Touchpoint's topics on a broker with auto-creation off (run once by the compose
# `kafka-init` service, inside the apache/kafka image). Idempotent: existing topics are kept.
#
# Every topic gets the same partition count: the identity and customer stages are co-partitioned,
# and the worker (TOUCHPOINT_PARTITIONS) must be configured with the same number. Partitions
# bound the useful number of workers: with 8 partitions, a 9th worker idles.
set -euo pipefail

bootstrap="${KAFKA_BOOTSTRAP:-kafka:9092}"
prefix="${TOPIC_PREFIX:-touchpoints}"
partitions="${TOPIC_PARTITIONS:-8}"
replication="${TOPIC_REPLICATION:-1}"
kafka_topics="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

for topic in calls web store app identity identifiers customers dlq alerts; do
    "$kafka_topics" --bootstrap-server "$bootstrap" --create --if-not-exists \
        --topic "$prefix.$topic" --partitions "$partitions" --replication-factor "$replication"
done

# Karapace's schema store: one compacted partition (Karapace would create it too).
"$kafka_topics" --bootstrap-server "$bootstrap" --create --if-not-exists \
    --topic _schemas --partitions 1 --replication-factor "$replication" --config cleanup.policy=compact

"$kafka_topics" --bootstrap-server "$bootstrap" --list
