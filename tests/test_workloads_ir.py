"""The IR building blocks: affine index expressions, accesses, tensors, unary ops, Einsums."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workloads import (
    DTYPE_BYTES,
    Access,
    Affine,
    Einsum,
    Tensor,
    Unary,
    WorkloadError,
)

# --- Affine ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, terms, const",
    [
        ("m1*256+m0", (("m1", 256), ("m0", 1)), 0),
        ("256*m1 + m0", (("m1", 256), ("m0", 1)), 0),
        ("m", (("m", 1),), 0),
        ("m1+1", (("m1", 1),), 1),
        ("0", (), 0),
        ("m-1", (("m", 1),), -1),
        ("-m + 3", (("m", -1),), 3),
        ("2*3*m", (("m", 6),), 0),
        ("m + m", (("m", 2),), 0),
        ("m - m + 4", (), 4),
    ],
)
def test_affine_parse(text, terms, const):
    a = Affine.parse(text)
    assert a.terms == terms
    assert a.const == const
    assert a.ranks == tuple(r for r, _ in terms)


@pytest.mark.parametrize("text", ["m1*256+m0", "m", "m1+1", "0", "m-1", "-m*2+3", "-4", "a*3-b*2-7"])
def test_affine_str_round_trips(text):
    assert str(Affine.parse(text)) == text
    assert Affine.parse(str(Affine.parse(text))) == Affine.parse(text)


def test_affine_str_is_canonical():
    assert str(Affine.parse("256*m1 + m0")) == "m1*256+m0"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("m*n", "not affine"),
        ("m+", "missing"),
        ("m**2", "missing"),
        ("m/2", "unexpected '/'"),
        ("3m", "unexpected 'm'"),
        ("m 3", "unexpected 3"),
    ],
)
def test_affine_parse_rejects_bad_text(text, fragment):
    with pytest.raises(WorkloadError, match=fragment):
        Affine.parse(text)


@st.composite
def affines(draw):
    names = draw(st.lists(st.sampled_from(["m", "m0", "m1", "p", "k_2"]), unique=True, max_size=4))
    coefs = [draw(st.integers(-50, 50).filter(bool)) for _ in names]
    return Affine(tuple(zip(names, coefs)), draw(st.integers(-100, 100)))


@given(affines())
def test_affine_str_parse_property(a):
    assert Affine.parse(str(a)) == a


@given(affines(), st.data())
def test_affine_bounds_match_brute_force(a, data):
    extents = {r: data.draw(st.integers(1, 4)) for r in a.ranks}
    grids = np.meshgrid(*(np.arange(extents[r]) for r in a.ranks), indexing="ij")
    values = np.asarray(a.evaluate(dict(zip(a.ranks, grids))))
    assert a.bounds(extents) == (values.min(), values.max())


def test_affine_as_rank():
    assert Affine.parse("m").as_rank() == "m"
    assert Affine.parse("m+1").as_rank() is None
    assert Affine.parse("m*2").as_rank() is None


# --- Access ----------------------------------------------------------------------------------


def test_access_parse():
    a = Access.parse("BK[e, m1, m0]")
    assert a.tensor == "BK"
    assert a.index == (Affine.parse("e"), Affine.parse("m1"), Affine.parse("m0"))
    assert a.ranks == ("e", "m1", "m0")
    assert a.is_projection
    assert str(a) == "BK[e,m1,m0]"


def test_access_parse_affine_and_constant():
    a = Access.parse("RM[m1+1,p]")
    assert a.index[0] == Affine((("m1", 1),), 1)
    assert not a.is_projection
    k = Access.parse("K[e, m1*256 + m0]")
    assert k.ranks == ("e", "m1", "m0")
    c = Access.parse("RD[4,p]")
    assert c.ranks == ("p",)
    assert Access.parse("S[]").index == ()


@pytest.mark.parametrize("text", ["BK", "BK[e", "1X[m]", "A[m,,k]", "A[m](k)", "A[m*n]"])
def test_access_parse_rejects_bad_text(text):
    with pytest.raises(WorkloadError, match="bad tensor access"):
        Access.parse(text)


# --- Tensor, Unary ---------------------------------------------------------------------------


def test_tensor_bytes_per_element():
    assert DTYPE_BYTES == {
        "fp64": 8, "fp32": 4, "int32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5,
    }
    assert Tensor("A", ("m",)).bytes_per_element == 2
    assert Tensor("A", ("m",), "int4").bytes_per_element == 0.5
    assert Tensor("RM", ("m1", "p"), initial=float("-inf")).initial == float("-inf")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="A", ranks=("m",), dtype="fp12"), "unknown dtype 'fp12'"),
        (dict(name="A", ranks=("m", "m")), "repeated rank"),
        (dict(name="2A", ranks=("m",)), "not an identifier"),
        (dict(name="A", ranks=("m",), initial="zero"), "initial must be a number"),
    ],
)
def test_tensor_rejects_bad_fields(kwargs, fragment):
    with pytest.raises(WorkloadError, match=fragment):
        Tensor(**kwargs)


def test_unary_validation():
    assert Unary("scale", 0.125).arg == 0.125
    with pytest.raises(WorkloadError, match="did you mean 'exp'"):
        Unary("exq")
    with pytest.raises(WorkloadError, match="needs an arg"):
        Unary("scale")
    with pytest.raises(WorkloadError, match="takes no arg"):
        Unary("exp", 2.0)


# --- Einsum ----------------------------------------------------------------------------------


def test_einsum_ranks():
    e = Einsum("BQK", "BQK[m1,m0,p]", ("Q[e,p]", "BK[e,m1,m0]"), "mul", "sum")
    assert e.ranks == ("m1", "m0", "p", "e")
    assert e.reduced_ranks == ("e",)
    assert e.output_ranks == ("m1", "m0", "p")
    assert e.tensors == ("BQK", "Q", "BK")
    assert isinstance(e.output, Access)


def test_einsum_accepts_parsed_parts():
    e = Einsum("Y", Access.parse("Y[m]"), (Access.parse("X[m]"),), unary=("exp", Unary("scale", 2)))
    assert e.unary == (Unary("exp"), Unary("scale", 2.0))
    assert e.map_op is None and e.reduce_op is None


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("C", "C[m]", ("A[m]",), "mul"), "map op 'mul' takes 2 inputs, got 1"),
        (("C", "C[m]", ("A[m]", "B[m]")), "copies exactly 1 input, got 2"),
        (("C", "C[m]", ("A[m]", "B[m]"), "mull"), "did you mean 'mul'"),
        (("C", "C[m]", ("A[m,k]",), None, "avg"), "unknown reduce op 'avg'"),
        (("C", "C[m]", ("A[m,k]",)), "ranks k are not in the output but no reduce op"),
        (("C", "C[m", ("A[m]",)), "einsum C: bad tensor access"),
    ],
)
def test_einsum_rejects_bad_fields(args, fragment):
    with pytest.raises(WorkloadError, match=fragment):
        Einsum(*args)


def test_workload_error_path_prefix():
    err = WorkloadError("unknown key 'reduc'", ("einsums", 2, "reduc"))
    assert err.path == ("einsums", 2, "reduc")
    assert err.message == "unknown key 'reduc'"
    assert str(err) == "einsums[2].reduc: unknown key 'reduc'"
    assert isinstance(err, ValueError)
    assert WorkloadError("x").path is None


def test_workloads_imports_no_other_einsim_package():
    """workloads sits at the bottom of the import graph: stdlib and numpy only."""
    root = pathlib.Path(__file__).resolve().parents[1] / "workloads"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in {"arch", "mappers", "sim"}, f"{path.name} imports {name}"
                assert top in {"workloads", "numpy", "yaml", "__future__"} or top in _stdlib(), (
                    f"{path.name} imports {name}"
                )


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)
