-- A customer's rolling score change over the configured change window (customer.change_window_seconds
-- in the model file): "-25" reads "25 points lower than at the start of this window's contacts".
-- Applied once, like every migration (schema_migrations records it).

ALTER TABLE {database}.customer_scores ADD COLUMN score_change Float32 DEFAULT 0 AFTER score;
