-- Every switch of every lamp: the readings where lamp_on differs from the one before
-- (LAG over each lamp's readings in time order), with how long the previous state lasted.
WITH ordered AS (
  SELECT
    sensor_id,
    timestamp,
    lamp_on,
    lag(lamp_on) OVER (PARTITION BY sensor_id ORDER BY timestamp) AS previous_on,
    fault
  FROM lamp_readings
),
changes AS (
  SELECT sensor_id, timestamp, previous_on, lamp_on, fault,
         lag(timestamp) OVER (PARTITION BY sensor_id ORDER BY timestamp) AS previous_change
  FROM ordered
  WHERE previous_on IS NOT NULL AND lamp_on <> previous_on
)
SELECT
  sensor_id,
  timestamp AS changed_at,
  CAST(previous_on AS INTEGER) AS from_state,
  CAST(lamp_on AS INTEGER) AS to_state,
  round((julianday(timestamp) - julianday(previous_change)) * 86400) AS previous_state_seconds,
  fault
FROM changes
ORDER BY sensor_id, changed_at;
