"""What runs: the extended-Einsum cascade IR, its numpy interpreter, workload builders, and
the lowering of Transformers to Programs of cascades.

Imports only the standard library and numpy (never arch, mappers or sim).
"""

from workloads.builders import (
    attention_1pass,
    attention_2pass,
    attention_3pass,
    gemm,
    gemms_from_list,
    softmax,
)
from workloads.cascade import Cascade, Stage
from workloads.interpreter import interpret
from workloads.ir import (
    DTYPE_BYTES,
    MAP_OPS,
    REDUCE_OPS,
    UNARY_OPS,
    Access,
    Affine,
    Einsum,
    Tensor,
    Unary,
    WorkloadError,
)
from workloads.passes import min_footprint, pass_count
from workloads.program import Dtypes, Program, Segment
from workloads.spec import parse_workload_spec
from workloads.transformer import lower

__all__ = [
    "DTYPE_BYTES",
    "MAP_OPS",
    "REDUCE_OPS",
    "UNARY_OPS",
    "Access",
    "Affine",
    "Cascade",
    "Dtypes",
    "Einsum",
    "Program",
    "Segment",
    "Stage",
    "Tensor",
    "Unary",
    "WorkloadError",
    "attention_1pass",
    "attention_2pass",
    "attention_3pass",
    "gemm",
    "gemms_from_list",
    "interpret",
    "lower",
    "min_footprint",
    "pass_count",
    "parse_workload_spec",
    "softmax",
]
