-- channel_scores becomes a real table, written by the workers (pipeline/channel_scores.py) at
-- every evaluation tick of event time (1 min): per channel, its total (dimension '') and its top N
-- dimension values plus '(other)', for each reported window (window_seconds 300 and 3600 by
-- default). A row holds the touchpoints that had arrived when event time crossed its window end;
-- a replay writes the same window end again with a higher version (wall-clock ms): read FINAL.
--
-- Replaces the 0002 view of the same name (DROP TABLE drops a view on 18.16, which has no
-- DROP VIEW). The runner applies this file once (schema_migrations). Re-running it after a
-- partial failure is safe: no worker writes before the schema version is recorded, so the DROP
-- can only remove the view or an empty table, and the CREATE has IF NOT EXISTS.
-- Means and rates are NULL when the window had nothing to average (no CSAT answer, ...).

DROP TABLE IF EXISTS {database}.channel_scores;

CREATE TABLE IF NOT EXISTS {database}.channel_scores
(
    window_start DateTime,
    window_end DateTime,
    window_end_ms UInt64,
    window_seconds UInt32,
    channel String,
    dimension_name String,
    dimension String,
    volume UInt64,
    mean_score Nullable(Float64),
    nps Nullable(Float64),
    nps_responses UInt64,
    mean_csat Nullable(Float64),
    csat_responses UInt64,
    mean_ces Nullable(Float64),
    ces_responses UInt64,
    friction_rate Nullable(Float64),
    error_rate Nullable(Float64),
    version UInt64,
    written_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_end)
ORDER BY (channel, dimension, window_seconds, window_end_ms);
