-- name: average_price
-- title: Average price
-- description: Mean list price of purchased items (a purchase without a price is left out).
-- unit: currency
-- dimensions: item_id, country
SELECT item_id, country, AVG(price) AS value
FROM events
WHERE event_type = 'purchase'
GROUP BY item_id, country
