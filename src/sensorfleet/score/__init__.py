"""Scoring anomaly detectors against the labelled readings (``sensorfleet score``).

The data path reads top to bottom: ``truth`` and ``predictions`` read their
tables (through ``tables`` and ``columns``), ``match`` pairs them, ``points``,
``ranges`` and ``rul`` compute the metrics, ``evaluate`` breaks them down,
``baselines`` supplies reference detectors, ``gates`` checks ``--fail-under``,
and ``render`` prints. ``pipeline.score_detectors`` is the one library call.
"""
