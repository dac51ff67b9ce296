-- name: sign_ins
-- title: Sign-ins
-- description: Number of sign-in events.
-- unit: events
-- dimensions: country, browser
SELECT country, browser, COUNT(*) AS value
FROM events
WHERE event_type = 'sign-in'
GROUP BY country, browser
