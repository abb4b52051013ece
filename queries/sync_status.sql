SELECT 
  firmware_version,
  COUNT(*) as total_readings,
  SUM(CASE WHEN synced = 1 THEN 1 ELSE 0 END) as synced_readings,
  ROUND(100.0 * SUM(CASE WHEN synced = 1 THEN 1 ELSE 0 END) / COUNT(*), 2) as sync_percentage
FROM sensor_readings
GROUP BY firmware_version
ORDER BY sync_percentage;
