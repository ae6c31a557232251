-- Erased customers (touchpoint forget): digests of the customer, anonymous and identifier keys
-- that replays and late events must not bring back. Digests only (pipeline/suppression.py), so
-- the list itself keeps no identifier. Workers load it at start and refresh it while running.

CREATE TABLE IF NOT EXISTS {database}.suppressions
(
    token String,
    kind String,
    requested_at DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree()
ORDER BY token;
