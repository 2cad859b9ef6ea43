"""Workload specs given on a command line: ``gemm:M,N,K`` or ``gemm:M,N,K:dtype``."""

from __future__ import annotations

import difflib

from workloads.builders import gemm
from workloads.cascade import Cascade
from workloads.ir import DTYPE_BYTES, WorkloadError

FORM = "gemm:M,N,K (optionally gemm:M,N,K:dtype, e.g. gemm:512,768,768:int8)"
"""The expected form, quoted in every error message."""


def parse_workload_spec(text: str) -> Cascade:
    """Parse ``gemm:M,N,K[:dtype]`` into a GEMM cascade named ``gemm_MxNxK``."""

    def fail(why: str) -> WorkloadError:
        return WorkloadError(f"bad workload spec {text!r}: {why}; expected {FORM}")

    if not isinstance(text, str):
        raise WorkloadError(f"workload spec must be text, got {text!r}; expected {FORM}")
    parts = [part.strip() for part in text.strip().split(":")]
    kind = parts[0].lower()
    if kind != "gemm":
        close = difflib.get_close_matches(kind, ["gemm"], n=1)
        hint = " (did you mean 'gemm'?)" if close else ""
        if len(parts) == 1:
            raise fail("it does not start with a kind such as 'gemm:'")
        raise fail(f"unknown kind {parts[0]!r}{hint}")
    if len(parts) < 2 or not parts[1]:
        raise fail("missing the sizes M,N,K")
    if len(parts) > 3:
        raise fail("too many ':' fields")
    sizes = [s.strip() for s in parts[1].split(",")]
    if len(sizes) != 3:
        raise fail(f"need 3 sizes M,N,K, got {len(sizes)}")
    values = []
    for label, s in zip("MNK", sizes):
        try:
            value = int(s.replace("_", ""))
        except ValueError:
            raise fail(f"{label}={s!r} is not an integer") from None
        if value < 1:
            raise fail(f"{label}={value} must be positive")
        values.append(value)
    dtype = "fp16"
    if len(parts) == 3:
        dtype = parts[2].lower()
        if dtype not in DTYPE_BYTES:
            close = difflib.get_close_matches(dtype, list(DTYPE_BYTES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(DTYPE_BYTES)})"
            raise fail(f"unknown dtype {parts[2]!r}{hint}")
    M, N, K = values
    return gemm(M, N, K, dtype=dtype, name=f"gemm_{M}x{N}x{K}")
