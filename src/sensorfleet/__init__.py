"""sensorfleet: an industrial edge-node sensor simulator fleet.

``node/`` is the core data path: config → identity → profiles → signal →
anomalies → generator → writer → store, driven by the loop. ``edges/`` are
what reaches a running node from outside (HTTP monitor, file watcher, OPC UA
and Modbus faces); ``run.run_node`` wires the core and its edges into one
run. ``sync/`` ships rows to central stores, ``report/`` analyses them, and
``cli/`` is the command line over all of it. Dependencies point inwards,
from the edges to the core, never the other way round.
"""

__version__ = "0.1.0"
