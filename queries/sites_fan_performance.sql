-- Fan performance over the last 24 hours: average, highest and lowest speed while
-- switched on, per fan; a stalled or surging fan stands out by its minimum or maximum.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM fan_readings)
SELECT
  sensor_id,
  location,
  round(avg(rpm), 1) AS avg_rpm,
  max(rpm) AS max_rpm,
  min(rpm) AS min_rpm,
  count(*) AS readings
FROM fan_readings, now
WHERE julianday(timestamp) > now.t - 1 AND fan_on = 1
GROUP BY sensor_id, location
ORDER BY min_rpm ASC, max_rpm DESC;
