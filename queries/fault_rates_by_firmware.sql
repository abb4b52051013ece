SELECT 
  firmware_version,
  COUNT(*) as total_readings,
  SUM(CASE WHEN fault IS NOT NULL THEN 1 ELSE 0 END) as faulty_readings,
  ROUND(100.0 * SUM(CASE WHEN fault IS NOT NULL THEN 1 ELSE 0 END) / COUNT(*), 2) as fault_percentage,
  COUNT(DISTINCT sensor_id || fault_started_at) as fault_onsets
FROM compressor_readings
GROUP BY firmware_version
ORDER BY fault_percentage DESC;
