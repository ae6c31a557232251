-- The BI contract: views that always show the current truth. They read the latest version of
-- each row (FINAL) and attribute anonymous keys to the customer they were later linked to.

CREATE VIEW IF NOT EXISTS {database}.identity_stitching AS
SELECT
    anonymous_key AS attributed_key,
    argMax(customer_key, version) AS stitched_key
FROM {database}.identity_links
WHERE decision = 'linked' AND anonymous_key != ''
GROUP BY anonymous_key;

CREATE VIEW IF NOT EXISTS {database}.customer_touchpoints AS
SELECT
    event_id,
    if(stitched_key != '', stitched_key, attributed_key) AS customer_key,
    attributed_key,
    journey_id,
    channel,
    type,
    occurred_at,
    occurred_at_ms,
    dimension,
    score,
    component_names,
    component_points,
    feedback_kind,
    feedback_score,
    value,
    friction,
    late
FROM
(
    SELECT event_id, customer_key AS attributed_key, journey_id, channel, type, occurred_at,
           occurred_at_ms, dimension, score, component_names, component_points, feedback_kind,
           feedback_score, value, friction, late
    FROM {database}.touchpoints FINAL
)
ANY LEFT JOIN {database}.identity_stitching USING attributed_key;

CREATE VIEW IF NOT EXISTS {database}.customer_journeys AS
SELECT
    journey_id,
    if(stitched_key != '', stitched_key, attributed_key) AS customer_key,
    attributed_key,
    started_at,
    ended_at,
    channels,
    channel_switches,
    touchpoint_count,
    duration_seconds,
    status,
    outcome,
    score,
    component_names,
    component_points
FROM
(
    SELECT journey_id, customer_key AS attributed_key, started_at, ended_at, channels,
           channel_switches, touchpoint_count, duration_seconds, status, outcome, score,
           component_names, component_points
    FROM {database}.journeys FINAL
)
ANY LEFT JOIN {database}.identity_stitching USING attributed_key;

CREATE VIEW IF NOT EXISTS {database}.customer_latest AS
SELECT
    customer_key,
    argMax(key_score, key_as_of_ms) AS score,
    toDateTime(intDiv(max(key_as_of_ms), 1000)) AS as_of,
    argMax(key_at_risk, key_as_of_ms) AS at_risk,
    sum(key_touchpoints) AS touchpoints
FROM
(
    SELECT
        if(stitched_key != '', stitched_key, attributed_key) AS customer_key,
        key_score, key_as_of_ms, key_at_risk, key_touchpoints
    FROM
    (
        SELECT customer_key AS attributed_key,
               argMax(score, as_of_ms) AS key_score,
               max(as_of_ms) AS key_as_of_ms,
               argMax(at_risk, as_of_ms) AS key_at_risk,
               max(touchpoints) AS key_touchpoints
        FROM {database}.customer_scores FINAL
        GROUP BY customer_key
    )
    ANY LEFT JOIN {database}.identity_stitching USING attributed_key
)
GROUP BY customer_key;

CREATE VIEW IF NOT EXISTS {database}.channel_scores AS
SELECT
    toStartOfFiveMinute(occurred_at) AS bucket_start,
    channel,
    dimension,
    count() AS volume,
    avg(score) AS mean_score,
    countIf(feedback_kind = 'nps') AS nps_responses,
    if(nps_responses = 0, nan,
       (countIf(feedback_kind = 'nps' AND feedback_score >= 9)
        - countIf(feedback_kind = 'nps' AND feedback_score <= 6)) * 100 / nps_responses) AS nps,
    avgIf(feedback_score, feedback_kind = 'csat') AS mean_csat,
    avgIf(feedback_score, feedback_kind = 'ces') AS mean_ces,
    avg(friction) AS friction_rate
FROM {database}.touchpoints FINAL
GROUP BY bucket_start, channel, dimension;
