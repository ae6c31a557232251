-- Customers at risk by segment.
-- Question: where are the customers whose experience puts them at risk of leaving?
-- At risk = current rolling score below the model's at_risk_threshold (40 by default; see
-- docs/scoring.md). Touchpoint knows no CRM segment, so customers are segmented by what it sees:
-- their primary channel (the one with most touchpoints), whether they are known or still
-- anonymous, and their spend band (sum of `value` on purchases). To use your own segments, join
-- your CRM table on customer_key instead.
SELECT
    primary_channel,
    identity,
    spend_band,
    count() AS customers,
    countIf(at_risk = 1) AS customers_at_risk,
    round(customers_at_risk * 100 / customers, 1) AS at_risk_percent,
    round(avg(score), 1) AS mean_score
FROM
(
    SELECT
        customer_key,
        score,
        at_risk,
        primary_channel,
        if(startsWith(customer_key, 'anon-'), 'anonymous', 'known') AS identity,
        multiIf(spend = 0, 'none', spend < 100, 'under 100', spend < 500, '100-500', '500+') AS spend_band
    FROM cx.customer_latest AS latest
    ANY LEFT JOIN
    (
        -- ties between channels go to the first in alphabetical order, so results are stable
        SELECT
            customer_key,
            argMax(channel, touchpoints * 10 - indexOf(['app', 'call', 'store', 'web'], channel)) AS primary_channel,
            sum(channel_spend) AS spend
        FROM
        (
            SELECT
                customer_key,
                channel,
                count() AS touchpoints,
                sumIf(ifNull(value, 0), type IN ('purchase', 'checkout')) AS channel_spend
            FROM cx.customer_touchpoints
            GROUP BY customer_key, channel
        ) AS per_channel
        GROUP BY customer_key
    ) AS seen USING customer_key
) AS customer
GROUP BY primary_channel, identity, spend_band
ORDER BY customers_at_risk DESC, customers DESC, primary_channel, identity, spend_band
