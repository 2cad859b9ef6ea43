"""How a mapped workload runs in time, and the front doors (CLI, ``evaluate``, ``sweep``).

``sim`` may import ``mappers``, ``workloads`` and ``arch``; nothing imports ``sim``.
"""

from sim.result import EinsumResult, RunResult
from sim.run import evaluate

__all__ = ["EinsumResult", "RunResult", "evaluate", "sweep", "load_results", "export_results", "SweepSpecError"]

_LAZY = {"sweep": "sim.sweep_runner", "load_results": "sim.store", "export_results": "sim.store", "SweepSpecError": "sim.sweep_spec"}


def __getattr__(name: str):
    """The sweep front doors, imported on first use (no sweep imports when only ``evaluate`` is wanted)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute '{name}'")
