"""The node's edges: what reaches a running node from outside its core.

``monitor`` (HTTP health, metrics, status and anomaly control, with ``metrics``
for Prometheus), ``watcher`` (hot reload of the config and identity files) and
``faces`` (OPC UA and Modbus servers). They read the loop through its
snapshots and change it only through ``NodeLoop.submit``; the core never
imports them.
"""
