-- Sensor health: instruments reading wrong in the last hour (a drifting, offset, stuck or
-- silent sensor, from the instrument_fault label), since when, the days since the last
-- calibration (at the end of each service), and how far the machine's
-- temperature reading stands from its healthy peers running in the same hour (percent).
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM production_machine_readings),
hour AS (
  SELECT * FROM production_machine_readings, now WHERE julianday(timestamp) > now.t - 1 / 24.0
),
peers AS (
  SELECT avg(temperature_c) AS baseline FROM hour
  WHERE instrument_fault IS NULL AND state = 'running'
    AND sensor_id NOT IN (SELECT sensor_id FROM hour WHERE instrument_fault IS NOT NULL)
)
SELECT
  h.sensor_id,
  h.instrument_fault,
  count(*) AS readings,
  round(max(h.days_since_calibration), 2) AS days_since_calibration,
  (SELECT min(timestamp) FROM production_machine_readings AS r
    WHERE r.sensor_id = h.sensor_id AND r.instrument_fault = h.instrument_fault) AS fault_since,
  round(100 * (avg(CASE WHEN h.state = 'running' THEN h.temperature_c END) - peers.baseline)
        / peers.baseline, 1) AS drift_percentage
FROM hour AS h, peers
WHERE h.instrument_fault IS NOT NULL
GROUP BY h.sensor_id, h.instrument_fault
ORDER BY drift_percentage DESC;
