SELECT 
  model,
  anomaly_type,
  COUNT(*) as count,
  ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY model), 2) as percentage
FROM sensor_readings
WHERE anomaly_flag = 1
GROUP BY model, anomaly_type
ORDER BY model, percentage DESC;
