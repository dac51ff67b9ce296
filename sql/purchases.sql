-- name: purchases
-- title: Purchases
-- description: Number of purchase events.
-- unit: purchases
-- dimensions: item_id, country
SELECT item_id, country, COUNT(*) AS value
FROM events
WHERE event_type = 'purchase'
GROUP BY item_id, country
