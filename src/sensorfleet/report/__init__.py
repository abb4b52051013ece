"""``sensorfleet report``: what the fleet's databases say, and whether the config agrees.

The data path reads top to bottom: sources (which files, read-only) →
aggregate (SQL counts per sensor, identity and anomaly type) → expected
(the config's calibrated rates) → analysis (groups, intervals, flags) →
series (bucketed time series for plots) → renderers (text, data, HTML).
``pipeline`` wires them together: ``produce_report(ReportOptions(...))``.
"""
