-- Bearing early warning: rising vibration with a warm machine over the last 24 hours,
-- while running. Zone boundaries of ISO 10816-3 group 2 (flexible support): B/C 4.5,
-- C/D 7.1 mm/s; a healthy spindle runs about 2 mm/s and 65 °C.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM production_machine_readings),
day AS (
  SELECT sensor_id,
         avg(vibration_mm_s) AS avg_vibration,
         max(vibration_mm_s) AS max_vibration,
         avg(temperature_c) AS avg_temperature
  FROM production_machine_readings, now
  WHERE julianday(timestamp) > now.t - 1 AND state = 'running'
  GROUP BY sensor_id
)
SELECT
  sensor_id,
  round(avg_vibration, 2) AS avg_vibration_mm_s,
  round(max_vibration, 2) AS max_vibration_mm_s,
  round(avg_temperature, 1) AS avg_temperature_c,
  CASE
    WHEN max_vibration > 7.1 AND avg_temperature > 70 THEN 'CRITICAL'
    WHEN max_vibration > 4.5 AND avg_temperature > 60 THEN 'WARNING'
    ELSE 'NORMAL'
  END AS bearing_health_status
FROM day
WHERE avg_vibration > 2.3
ORDER BY avg_vibration DESC;
