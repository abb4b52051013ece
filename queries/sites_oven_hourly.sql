-- Average, lowest and highest oven temperature per oven and hour over the last 7 days.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM oven_readings)
SELECT
  sensor_id,
  location,
  strftime('%Y-%m-%dT%H:00:00Z', timestamp) AS hour,
  round(avg(temperature_c), 1) AS avg_temperature_c,
  round(min(temperature_c), 1) AS min_temperature_c,
  round(max(temperature_c), 1) AS max_temperature_c,
  count(*) AS readings
FROM oven_readings, now
WHERE julianday(timestamp) > now.t - 7
GROUP BY sensor_id, location, hour
ORDER BY sensor_id, hour;
