"""``python -m sensorfleet`` is the ``sensorfleet`` command."""

import sys

from .cli import main

sys.exit(main())
