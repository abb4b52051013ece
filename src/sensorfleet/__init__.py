"""sensorfleet: an industrial edge-node sensor simulator fleet.

The data path reads top to bottom: config → identity → profiles → signal →
anomalies → store, driven by the node loop. Reload, monitoring, sync and
report sit beside it and depend on the core, never the other way round.
"""

__version__ = "0.1.0"
