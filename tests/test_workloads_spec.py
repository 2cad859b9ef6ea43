"""Parsing ``gemm:M,N,K[:dtype]`` workload specs."""

from __future__ import annotations

import pytest

from workloads import WorkloadError, parse_workload_spec


@pytest.mark.parametrize(
    "text, shape, dtype",
    [
        ("gemm:512,768,768", (512, 768, 768), "fp16"),
        ("gemm:512,768,768:int8", (512, 768, 768), "int8"),
        ("gemm:1,2,3:fp32", (1, 2, 3), "fp32"),
        (" GEMM: 64, 32 ,16 : BF16 ", (64, 32, 16), "bf16"),
    ],
)
def test_good_specs(text, shape, dtype):
    c = parse_workload_spec(text)
    M, N, K = shape
    assert dict(c.ranks) == {"m": M, "n": N, "k": K}
    assert c.tensor("A").dtype == dtype
    assert c.op_counts() == {"mac": M * N * K}
    assert c.name == f"gemm_{M}x{N}x{K}"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("gemm:512,768", "need 3 sizes M,N,K, got 2"),
        ("gemm:512,768,768,1", "need 3 sizes M,N,K, got 4"),
        ("gemm:", "missing the sizes"),
        ("gemm", "missing the sizes"),
        ("gemm:512,,768", "N='' is not an integer"),
        ("gemm:512,7.5,768", "N='7.5' is not an integer"),
        ("gemm:a,b,c", "M='a' is not an integer"),
        ("gemm:512,0,768", "N=0 must be positive"),
        ("gemm:-1,2,3", "M=-1 must be positive"),
        ("conv:1,2,3", "unknown kind 'conv'"),
        ("gem:1,2,3", "did you mean 'gemm'"),
        ("bert-base", "does not start with a kind"),
        ("", "does not start with a kind"),
        ("gemm:1,2,3:int7", "unknown dtype 'int7'"),
        ("gemm:1,2,3:fp16:x", "too many ':' fields"),
    ],
)
def test_bad_specs(text, fragment):
    with pytest.raises(WorkloadError) as info:
        parse_workload_spec(text)
    message = str(info.value)
    assert fragment in message
    assert "gemm:M,N,K" in message
    assert "\n" not in message
