-- name: revenue
-- title: Revenue
-- description: Sum of price times quantity over purchases (quantity defaults to 1). Assumes one currency.
-- unit: currency
-- dimensions: item_id, country
SELECT item_id, country, SUM(price * COALESCE(quantity, 1)) AS value
FROM events
WHERE event_type = 'purchase'
GROUP BY item_id, country
