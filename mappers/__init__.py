"""How an Einsum is laid onto hardware: the Mapping type, the analytical cost model, mappers.

Imports ``workloads`` and ``arch`` only (never ``sim``).
"""

from mappers.cost import Cost, energy_breakdown, evaluate
from mappers.errors import MappingError
from mappers.greedy import default_mapping
from mappers.mapping import LevelMapping, Mapping, check_mapping, mapping_from_dict
from mappers.systolic import array_accesses, fold_plan, gemm_cycles
from mappers.view import MatmulView, matmul_view

__all__ = [
    "Cost", "LevelMapping", "Mapping", "MappingError", "MatmulView", "array_accesses", "check_mapping",
    "default_mapping", "energy_breakdown", "evaluate", "fold_plan", "gemm_cycles", "mapping_from_dict", "matmul_view",
]
