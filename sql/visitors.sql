-- name: visitors
-- title: Visitors
-- description: Distinct users seen in any event.
-- unit: users
-- dimensions: country, browser
SELECT country, browser, COUNT(DISTINCT user_id) AS value
FROM events
GROUP BY country, browser
