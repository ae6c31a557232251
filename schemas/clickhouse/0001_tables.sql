-- Touchpoint's tables. Every table is a ReplacingMergeTree keyed by a deterministic id and a
-- version (the customer's state sequence number), so a replayed write collapses onto the row it
-- repeats; the views in 0002 read the latest version. Runs unchanged on ClickHouse 18.16 and on
-- current releases: no DateTime64, no TTL, no LowCardinality, no JSON functions.

CREATE TABLE IF NOT EXISTS {database}.touchpoints
(
    event_id String,
    customer_key String,
    journey_id String,
    channel String,
    type String,
    occurred_at DateTime,
    occurred_at_ms UInt64,
    dimension String,
    score Float32,
    component_names Array(String),
    component_points Array(Float32),
    feedback_kind String,
    feedback_score Nullable(Int16),
    value Nullable(Float64),
    friction UInt8,
    late UInt8,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY event_id;

CREATE TABLE IF NOT EXISTS {database}.journeys
(
    journey_id String,
    customer_key String,
    started_at DateTime,
    ended_at DateTime,
    started_at_ms UInt64,
    ended_at_ms UInt64,
    channels Array(String),
    channel_switches UInt32,
    touchpoint_count UInt32,
    duration_seconds Float64,
    status String,
    outcome String,
    score Float32,
    component_names Array(String),
    component_points Array(Float32),
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY journey_id;

CREATE TABLE IF NOT EXISTS {database}.customer_scores
(
    customer_key String,
    as_of DateTime,
    as_of_ms UInt64,
    score Float32,
    last_touchpoint_score Float32,
    touchpoints UInt64,
    at_risk UInt8,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(as_of)
ORDER BY (customer_key, as_of_ms);

CREATE TABLE IF NOT EXISTS {database}.alerts
(
    alert_id String,
    rule String,
    severity String,
    state String,
    subject_kind String,
    channel String,
    dimension String,
    customer_key String,
    value Float64,
    threshold Float64,
    occurred_at DateTime,
    occurred_at_ms UInt64,
    details String,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (alert_id, state);

CREATE TABLE IF NOT EXISTS {database}.identity_links
(
    identifier_type String,
    identifier_value String,
    anonymous_key String,
    customer_key String,
    decision String,
    reason String,
    event_id String,
    occurred_at DateTime,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (identifier_type, identifier_value, customer_key, decision);

CREATE TABLE IF NOT EXISTS {database}.dead_letters
(
    topic String,
    partition UInt32,
    offset UInt64,
    reason String,
    step String,
    detail String,
    key String,
    payload String,
    received_at DateTime,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
ORDER BY (topic, partition, offset);
