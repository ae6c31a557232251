-- NPS by channel per week.
-- Question: how likely are customers to recommend us, per channel, week by week?
-- NPS = % promoters (answers 9-10) - % detractors (answers 0-6), from -100 to +100. Each survey
-- answer counts once (the view reads the latest version of each event), in the week (Monday,
-- UTC) of the event time. Weeks with few answers swing a lot: read `responses` next to `nps`.
SELECT
    toMonday(occurred_at) AS week,
    channel,
    count() AS responses,
    countIf(feedback_score >= 9) AS promoters,
    countIf(feedback_score <= 6) AS detractors,
    round((promoters - detractors) * 100 / responses, 1) AS nps
FROM cx.customer_touchpoints
WHERE feedback_kind = 'nps'
GROUP BY week, channel
ORDER BY week, channel
