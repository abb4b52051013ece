-- Production machines with a critical reading in the last 10 minutes: vibration in ISO
-- 10816-3 zone C or D (above 4.5 mm/s for group 2, flexible support), the spindle winding
-- above 120 °C, clamping pressure below 80 bar, or the supply 10 % off 400 V.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM production_machine_readings)
SELECT
  sensor_id,
  count(*) AS critical_readings,
  round(max(vibration_mm_s), 2) AS max_vibration_mm_s,
  round(max(temperature_c), 1) AS max_temperature_c,
  round(min(pressure_bar), 1) AS min_pressure_bar,
  round(min(voltage_v), 1) AS min_voltage_v,
  max(timestamp) AS last_critical
FROM production_machine_readings, now
WHERE julianday(timestamp) > now.t - 10 / 1440.0
  AND (vibration_mm_s > 4.5 OR temperature_c > 120 OR pressure_bar < 80
       OR voltage_v < 360 OR voltage_v > 440)
GROUP BY sensor_id
ORDER BY max_vibration_mm_s DESC;
