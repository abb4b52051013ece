"""Import a library without loading the standard modules it only needs for some calls.

structlog imports ``asyncio`` for async logging methods the node never calls (only the
OPC UA face runs an event loop), and ``http.server`` imports ``ssl`` through
``http.client`` for HTTPS connections the monitor never makes. Loaded for nothing, they
cost a node 1.5 MB and 1.1 MB (docs/footprint.md). Inside ``deferring``, such a module
is a stand-in that loads the real one on its first attribute lookup; the stand-in leaves
``sys.modules`` on the way out, so any later ``import asyncio`` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


class _OnFirstUse(types.ModuleType):
    """Stands in for a module in the modules imported meanwhile; the first lookup loads it."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # the import system probing (__path__, __file__...)
            raise AttributeError(name)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def deferring(*names: str) -> Iterator[None]:
    """Modules imported in the block see stand-ins for ``names`` (those not yet loaded)."""
    stand_ins = {name: _OnFirstUse(name) for name in names if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
