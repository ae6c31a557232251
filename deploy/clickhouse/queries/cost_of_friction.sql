-- Cost of friction.
-- Question: what does each kind of friction cost, in score points and in lost purchases?
-- For every friction signal (a negative score component: call.wait, web.error, app.crash,
-- channel_switch, ...): how many touchpoints and journeys it hit, the score points it took, and
-- how often the journeys it hit ended in a purchase compared with journeys without any friction.
-- lost_purchases estimates the purchases that did not happen: journeys hit x (purchase rate
-- without friction - purchase rate with this signal), floored at 0; lost_revenue multiplies them
-- by the mean purchase value (in the producers' currency unit). An estimate, not a causal claim.
SELECT
    signal,
    touchpoints_hit,
    journeys_hit,
    round(points_lost, 1) AS points_lost,
    round(purchase_rate_hit * 100, 1) AS purchase_percent_hit,
    round(baseline_rate * 100, 1) AS purchase_percent_without_friction,
    round(greatest(baseline_rate - purchase_rate_hit, 0) * journeys_hit, 1) AS lost_purchases,
    round(greatest(baseline_rate - purchase_rate_hit, 0) * journeys_hit * mean_purchase_value, 2) AS lost_revenue
FROM
(
    SELECT
        signal,
        sum(hits) AS touchpoints_hit,
        count() AS journeys_hit,
        -sum(signal_points) AS points_lost,
        avg(purchased) AS purchase_rate_hit,
        1 AS joined
    FROM
    (
        SELECT journey_id, signal, hits, signal_points, outcome = 'purchased' AS purchased
        FROM
        (
            SELECT journey_id, name AS signal, count() AS hits, sum(points) AS signal_points
            FROM cx.customer_touchpoints
            ARRAY JOIN component_names AS name, component_points AS points
            WHERE points < 0 AND journey_id != ''
            GROUP BY journey_id, signal
        ) AS hit
        ALL INNER JOIN (SELECT journey_id, outcome FROM cx.customer_journeys) AS journey USING journey_id
    ) AS hit_journey
    GROUP BY signal
) AS by_signal
ANY LEFT JOIN
(
    SELECT
        1 AS joined,
        avgIf(outcome = 'purchased', frictions = 0) AS baseline_rate,
        avgIf(purchase_value, purchase_value > 0) AS mean_purchase_value
    FROM
    (
        SELECT
            journey_id,
            countIf(friction = 1) AS frictions,
            sumIf(ifNull(value, 0), type IN ('purchase', 'checkout')) AS purchase_value
        FROM cx.customer_touchpoints
        WHERE journey_id != ''
        GROUP BY journey_id
    ) AS per_journey
    ALL INNER JOIN (SELECT journey_id, outcome FROM cx.customer_journeys) AS journey USING journey_id
) AS baseline USING joined
ORDER BY lost_revenue DESC, points_lost DESC, signal
