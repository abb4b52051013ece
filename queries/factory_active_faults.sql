-- Production machines with a fault open at their latest reading, newest first.
-- "Now" is the newest reading in the table, so the query also works on backfilled data.
WITH latest AS (
  SELECT sensor_id, max(id) AS id FROM production_machine_readings GROUP BY sensor_id
)
SELECT
  r.sensor_id,
  r.location,
  r.fault,
  r.state,
  round(r.fault_severity, 3) AS fault_severity,
  r.fault_started_at,
  round((julianday(r.timestamp) - julianday(r.fault_started_at)) * 1440, 1) AS duration_minutes
FROM production_machine_readings AS r
JOIN latest USING (sensor_id, id)
WHERE r.fault IS NOT NULL
ORDER BY r.fault_started_at DESC;
