-- Journeys that switched channel before a complaint.
-- Question: which journeys made the customer change channel (web to call, app to store, ...) and
-- then complain? Those are the journeys where a channel failed to serve the customer.
-- A complaint is a touchpoint with a negative survey answer (NPS 0-6, CSAT 1-2, CES 5-7) or a
-- failed contact (a call abandoned or ended unresolved: score components call.abandoned,
-- call.unresolved). A switch is a touchpoint on another channel than the journey's previous one
-- (score component channel_switch); it counts when it comes at or before the first complaint.
SELECT
    journey_id,
    customer_key,
    toDateTime(intDiv(first_switch_ms, 1000)) AS first_switch_at,
    toDateTime(intDiv(first_complaint_ms, 1000)) AS first_complaint_at,
    complaint_channel,
    channels,
    channel_switches,
    outcome,
    round(score, 1) AS journey_score
FROM
(
    SELECT
        journey_id,
        minIf(occurred_at_ms, has(component_names, 'channel_switch')) AS first_switch_ms,
        minIf(occurred_at_ms, complaint) AS first_complaint_ms,
        argMinIf(channel, occurred_at_ms, complaint) AS complaint_channel,
        countIf(has(component_names, 'channel_switch')) AS switches,
        countIf(complaint) AS complaints
    FROM
    (
        SELECT
            journey_id, channel, occurred_at_ms, component_names,
            (feedback_kind = 'nps' AND feedback_score <= 6)
                OR (feedback_kind = 'csat' AND feedback_score <= 2)
                OR (feedback_kind = 'ces' AND feedback_score >= 5)
                OR has(component_names, 'call.abandoned')
                OR has(component_names, 'call.unresolved') AS complaint
        FROM cx.customer_touchpoints
        WHERE journey_id != ''
    ) AS touchpoint
    GROUP BY journey_id
    HAVING switches > 0 AND complaints > 0 AND first_switch_ms <= first_complaint_ms
) AS complained
ALL INNER JOIN
(
    SELECT journey_id, customer_key, channels, channel_switches, outcome, score
    FROM cx.customer_journeys
) AS journey USING journey_id
ORDER BY first_complaint_at DESC, journey_id
LIMIT 1000
