-- Machines whose OEE averaged below 70 % over the last 8 hours (world class is 85 %),
-- with its three factors and the state the machine is in now. OEE is each shift's
-- figure so far, so a slow shift (a lower production factor: slower takt) counts as a
-- performance loss, as Nakajima defines it.
WITH now AS (SELECT julianday(max(timestamp)) AS t FROM production_machine_readings)
SELECT
  sensor_id,
  (SELECT state FROM production_machine_readings AS last
    WHERE last.sensor_id = r.sensor_id ORDER BY id DESC LIMIT 1) AS state_now,
  round(100 * avg(oee), 1) AS avg_oee,
  round(100 * avg(availability), 1) AS avg_availability,
  round(100 * avg(performance), 1) AS avg_performance,
  round(100 * avg(quality), 1) AS avg_quality,
  count(*) AS samples
FROM production_machine_readings AS r, now
WHERE julianday(timestamp) > now.t - 8 / 24.0
GROUP BY sensor_id
HAVING avg(oee) < 0.70
ORDER BY avg_oee ASC;
