"""The node's core: one sensor node's data path, from its inputs to its database file.

    config, identity  →  profiles  →  signal  →  anomalies  →  generator (readings)
                                                                   ↓
                               loop (schedule, control)  →  writer  →  store (SQLite)

``inputs`` loads the config and identity files (at start and on every reload),
``clock`` gives the loop real or simulated time, ``lease`` keeps one live
writer per sensor, ``dbfile`` guards the database file, and ``retention``
deletes rows a collector has shipped. Nothing here knows of the edges (CLI,
HTTP monitor, file watcher, OPC UA/Modbus faces): they call in, never the
other way round. Import the modules themselves; this package imports nothing,
so reading a config never loads numpy.
"""
