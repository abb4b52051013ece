CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp TEXT, value REAL);
INSERT INTO sensor_readings (timestamp, value) VALUES ('2024-01-01', 1.5);
