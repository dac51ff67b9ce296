-- name: content_views
-- title: Content views
-- description: Number of times content was played.
-- unit: plays
-- dimensions: content_id
SELECT content_id, COUNT(*) AS value
FROM events
WHERE event_type = 'play-content'
GROUP BY content_id
