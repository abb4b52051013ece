-- Machines with three or more sensors outside their normal band in the last 30 minutes
-- (each band a healthy running machine never leaves): the multi-sensor signature of a
-- developing failure rather than one noisy instrument.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM production_machine_readings),
recent AS (
  SELECT * FROM production_machine_readings, now
  WHERE julianday(timestamp) > now.t - 30 / 1440.0 AND state = 'running'
),
flags AS (
  SELECT sensor_id, 'vibration' AS sensor FROM recent WHERE vibration_mm_s > 4.5
  UNION SELECT sensor_id, 'temperature' FROM recent WHERE temperature_c > 85
  UNION SELECT sensor_id, 'torque' FROM recent WHERE torque_nm > 52
  UNION SELECT sensor_id, 'current' FROM recent WHERE current_a > 36
  UNION SELECT sensor_id, 'pressure' FROM recent WHERE pressure_bar < 100
  UNION SELECT sensor_id, 'flow' FROM recent WHERE flow_l_min < 30
  UNION SELECT sensor_id, 'voltage' FROM recent WHERE voltage_v < 380 OR voltage_v > 420
  UNION SELECT sensor_id, 'displacement' FROM recent WHERE abs(displacement_mm - 50) > 0.2
)
SELECT
  sensor_id,
  count(*) AS anomaly_sensor_count,
  group_concat(sensor, ', ') AS affected_sensor_types
FROM flags
GROUP BY sensor_id
HAVING count(*) >= 3
ORDER BY anomaly_sensor_count DESC;
