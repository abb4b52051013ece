"""Run one simulated sensor: ``python main.py --config config.yaml --identity node_identity.json``.

The same as ``sensorfleet run``; works from a source checkout without installing.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from sensorfleet.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
