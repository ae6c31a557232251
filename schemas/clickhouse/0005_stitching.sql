-- Back-stitching and journey merges, shown by the BI views without rewriting any table.
--
-- * merged_journeys: a journey that became part of another (a late touchpoint bridged the two, or
--   an anonymous journey was stitched onto a customer's) gets a new version of its journeys row
--   with status 'merged', which customer_journeys leaves out (never an orphan), and a row here
--   naming the surviving journey. Merge rows always name the final survivor (one hop).
-- * touchpoint_journeys: the journey a touchpoint belongs to when it changed after its row was
--   written (a late touchpoint split or bridged journeys); the latest version wins.
-- * customer_touchpoints: journey = the moved-to journey if any, then its survivor if that
--   journey's latest row is 'merged'. Customer = the stitched customer of an anonymous key.
-- * touchpoints.late already exists (0001): 1 for an event beyond the allowed lateness, stored
--   in no journey.
--
-- Views read the latest version with argMax, not FINAL plus WHERE: a filter on a non-key column
-- may be applied before FINAL collapses versions. ClickHouse 18.16 allows one JOIN per SELECT,
-- hence the nesting, and has no ADD COLUMN IF NOT EXISTS, hence new tables rather than columns.
-- Idempotent: CREATE TABLE IF NOT EXISTS, and views dropped (DROP TABLE drops a view on 18.16)
-- and created again.

CREATE TABLE IF NOT EXISTS {database}.merged_journeys
(
    journey_id String,
    customer_key String,
    merged_into String,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY journey_id;

CREATE TABLE IF NOT EXISTS {database}.touchpoint_journeys
(
    event_id String,
    customer_key String,
    journey_id String,
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY event_id;

DROP TABLE IF EXISTS {database}.journey_merges;

CREATE VIEW IF NOT EXISTS {database}.journey_merges AS
SELECT merged_journey_id, survivor_journey_id
FROM
(
    SELECT journey_id AS merged_journey_id, argMax(status, version) AS latest_status
    FROM {database}.journeys
    GROUP BY journey_id
    HAVING latest_status = 'merged'
)
ANY INNER JOIN
(
    SELECT journey_id AS merged_journey_id, argMax(merged_into, version) AS survivor_journey_id
    FROM {database}.merged_journeys
    GROUP BY journey_id
) USING merged_journey_id;

DROP TABLE IF EXISTS {database}.customer_touchpoints;

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
    SELECT *, if(survivor_journey_id != '', survivor_journey_id, assigned_journey_id) AS journey_id
    FROM
    (
        SELECT *, if(moved_journey_id != '' AND moved_version > written_version,
                     moved_journey_id, written_journey_id) AS assigned_journey_id
        FROM
        (
            SELECT event_id, customer_key AS attributed_key, journey_id AS written_journey_id,
                   version AS written_version,
                   channel, type, occurred_at, occurred_at_ms, dimension, score, component_names,
                   component_points, feedback_kind, feedback_score, value, friction, late
            FROM {database}.touchpoints FINAL
        )
        ANY LEFT JOIN
        (
            SELECT event_id, argMax(journey_id, version) AS moved_journey_id, max(version) AS moved_version
            FROM {database}.touchpoint_journeys
            GROUP BY event_id
        ) USING event_id
    )
    ANY LEFT JOIN
    (
        SELECT merged_journey_id AS assigned_journey_id, survivor_journey_id
        FROM {database}.journey_merges
    ) USING assigned_journey_id
)
ANY LEFT JOIN {database}.identity_stitching USING attributed_key;

DROP TABLE IF EXISTS {database}.customer_journeys;

CREATE VIEW IF NOT EXISTS {database}.customer_journeys AS
SELECT
    journey_id,
    if(stitched_key != '', stitched_key, attributed_key) AS customer_key,
    attributed_key,
    j_started_at AS started_at,
    j_ended_at AS ended_at,
    j_channels AS channels,
    j_channel_switches AS channel_switches,
    j_touchpoint_count AS touchpoint_count,
    j_duration_seconds AS duration_seconds,
    j_status AS status,
    j_outcome AS outcome,
    j_score AS score,
    j_component_names AS component_names,
    j_component_points AS component_points
FROM
(
    SELECT
        journey_id,
        argMax(customer_key, version) AS attributed_key,
        argMax(started_at, version) AS j_started_at,
        argMax(ended_at, version) AS j_ended_at,
        argMax(channels, version) AS j_channels,
        argMax(channel_switches, version) AS j_channel_switches,
        argMax(touchpoint_count, version) AS j_touchpoint_count,
        argMax(duration_seconds, version) AS j_duration_seconds,
        argMax(status, version) AS j_status,
        argMax(outcome, version) AS j_outcome,
        argMax(score, version) AS j_score,
        argMax(component_names, version) AS j_component_names,
        argMax(component_points, version) AS j_component_points
    FROM {database}.journeys
    GROUP BY journey_id
    HAVING j_status != 'merged'
)
ANY LEFT JOIN {database}.identity_stitching USING attributed_key;
