"""How a mapped workload runs in time, and the front doors (CLI, ``evaluate``).

``sim`` may import ``mappers``, ``workloads`` and ``arch``; nothing imports ``sim``.
"""

from sim.result import EinsumResult, RunResult
from sim.run import evaluate

__all__ = ["EinsumResult", "RunResult", "evaluate"]
