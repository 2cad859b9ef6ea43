"""Cascade validation, queries (shapes, op counts, traffic) and the plain-dict form."""

from __future__ import annotations

import math

import pytest
import yaml

from workloads import (
    Cascade,
    Einsum,
    Tensor,
    WorkloadError,
    attention_1pass,
    attention_3pass,
    gemm,
    gemms_from_list,
    softmax,
)

# --- queries ---------------------------------------------------------------------------------


def test_gemm_shape_counts_and_traffic():
    c = gemm(64, 32, 16)
    assert [e.name for e in c.einsums] == ["C"]
    assert c.tensor_shape("A") == (64, 16)
    assert c.tensor_shape("B") == (16, 32)
    assert c.tensor_shape("C") == (64, 32)
    assert c.inputs == ("A", "B")
    assert c.outputs == ("C",)
    assert c.op_counts() == {"mac": 64 * 32 * 16}
    assert c.iteration_points("C") == 64 * 32 * 16
    bytes_a, bytes_b, bytes_c = 64 * 16 * 2, 16 * 32 * 2, 64 * 32 * 2
    assert c.tensor_bytes("A") == bytes_a
    assert c.compulsory_traffic_bytes() == bytes_a + bytes_b + bytes_c


def test_tensor_bytes_by_dtype():
    assert gemm(4, 4, 4, dtype="int8").compulsory_traffic_bytes() == 3 * 16
    assert gemm(3, 3, 3, dtype="int4").tensor_bytes("A") == math.ceil(9 * 0.5)
    assert gemm(4, 4, 4, dtype="fp32").tensor_bytes("C") == 64


def test_softmax_op_counts():
    P, M = 7, 11
    assert softmax(P, M).op_counts() == {
        "max": M * P - P,  # GM: reduce max over m
        "sub": M * P,  # SN: exp(X - GM)
        "exp": M * P,
        "add": M * P - P,  # SD: reduce sum over m
        "div": M * P,  # Y = SN / SD
    }
    assert softmax(P, M).einsum_op_counts("SN") == {"sub": M * P, "exp": M * P}


def test_unary_and_non_mac_op_counts():
    c = Cascade(
        "u",
        {"m": 4, "k": 3},
        [Tensor("A", ("m", "k")), Tensor("B", ("m", "k")), Tensor("C", ("m",))],
        [Einsum("C", "C[m]", ("A[m,k]", "B[m,k]"), "mul", "max", ("exp", ("scale", 2.0)))],
    )
    assert c.op_counts() == {"mul": 12, "max": 12 - 4, "exp": 4, "scale": 4}


def test_attention_1pass_structure():
    E, F, P, M, M0 = 4, 3, 5, 12, 4
    c = attention_1pass(E, F, P, M, M0)
    M1 = M // M0
    assert c.iterative == {"m1": M1}
    assert dict(c.running_tensors) == {"RM": "m1", "RD": "m1", "RNV": "m1"}
    assert c.tensor_shape("RM") == (M1 + 1, P)
    assert c.tensor_shape("RNV") == (F, M1 + 1, P)
    assert c.tensor_shape("LM") == (M1, P)
    assert c.tensor("RM").initial == float("-inf")
    assert c.inputs == ("Q", "K", "V")
    assert c.outputs == ("AV",)
    stages = c.stages()
    assert [s.rank for s in stages] == ["m1", None]
    assert [e.name for e in stages[1].einsums] == ["AV"]
    assert c.loop_rank("SLN") == "m1" and c.loop_rank("AV") is None
    ops = c.op_counts()
    assert ops["mac"] == E * M * P + F * M * P  # BQK + SLNV
    assert ops["div"] == F * P  # division deferred to AV


def test_einsums_are_topologically_sorted():
    ref = attention_1pass(4, 3, 5, 8, 4)
    c = Cascade("rev", ref.ranks, ref.tensors, reversed(ref.einsums), ref.iterative)
    seen: set[str] = set(c.inputs)
    for e in c.einsums:
        for a in e.inputs:
            carried = a.tensor in c.running_tensors and c.loop_rank(e) is not None
            assert a.tensor in seen or carried, f"{e.name} reads {a.tensor} before it is produced"
        seen.add(e.output.tensor)
    again = Cascade("rev", c.ranks, c.tensors, c.einsums, c.iterative)
    assert again.einsums == c.einsums  # a valid order is kept as given


def test_gemms_from_list():
    c = gemms_from_list([("l0", 8, 4, 2), ("l1", 3, 5, 7)], dtype="int8")
    assert c.tensor_shape("l1_A") == (3, 7)
    assert c.ranks["l0_m"] == 8
    assert c.op_counts() == {"mac": 8 * 4 * 2 + 3 * 5 * 7}
    assert set(c.outputs) == {"l0_C", "l1_C"}
    with pytest.raises(WorkloadError, match="used twice"):
        gemms_from_list([("l0", 1, 1, 1), ("l0", 2, 2, 2)])
    odd = gemms_from_list([("conv-1", 2, 2, 2), ("1x1", 3, 3, 3)])
    assert [e.name for e in odd.einsums] == ["conv_1", "l_1x1"]
    assert odd.tensor_shape("l_1x1_A") == (3, 3)


def test_builders_reject_bad_sizes():
    with pytest.raises(WorkloadError, match="N must be a positive integer"):
        gemm(4, 0, 4)
    with pytest.raises(WorkloadError, match="not a multiple of M0"):
        attention_1pass(4, 4, 4, 10, 4)


# --- validation ------------------------------------------------------------------------------

RANKS = {"m": 4, "k": 3}


def _tensors(*specs: str) -> list[Tensor]:
    return [Tensor(s.split(":")[0], tuple(s.split(":")[1])) for s in specs]


def test_undefined_tensor():
    with pytest.raises(WorkloadError, match="einsum C: undefined tensor 'Z'") as info:
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("Z[m,k]",), None, "sum")])
    assert info.value.path == ("einsums", 0, "in", 0)


def test_undefined_rank():
    with pytest.raises(WorkloadError, match="einsum C: undefined rank 'q'"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m,q]",), None, "sum")])
    with pytest.raises(WorkloadError, match="tensor A: undefined rank 'q'"):
        Cascade("x", RANKS, _tensors("A:mq", "C:m"), [Einsum("C", "C[m]", ("A[m,q]",), None, "sum")])


def test_arity():
    with pytest.raises(WorkloadError, match="einsum C: map op 'div' takes 2 inputs, got 1"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m,k]",), "div", "sum")])


def test_index_count():
    with pytest.raises(WorkloadError, match=r"A\[m\] has 1 indices but tensor A has 2 ranks"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m]",))])


def test_shape_mismatch_from_affine_overflow():
    ranks = {"m": 12, "m1": 3, "m0": 5}  # m1*5+m0 reaches 14 >= 12
    with pytest.raises(WorkloadError, match=r"einsum S: index m1\*5\+m0 of X .* spans 0..14 but the extent is 12"):
        Cascade("x", ranks, [Tensor("X", ("m",)), Tensor("S", ("m1", "m0"))],
                [Einsum("S", "S[m1,m0]", ("X[m1*5+m0]",))])
    with pytest.raises(WorkloadError, match=r"index m\+1 of A"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m+1,k]",), None, "sum")])


def test_double_producer():
    with pytest.raises(WorkloadError, match="tensor C is produced by two einsums: C1 and C2"):
        Cascade(
            "x", RANKS, _tensors("A:mk", "C:m"),
            [Einsum("C1", "C[m]", ("A[m,k]",), None, "sum"), Einsum("C2", "C[m]", ("A[m,k]",), None, "max")],
        )


def test_cycle_is_named():
    with pytest.raises(WorkloadError, match="cycle: (A -> B -> A|B -> A -> B)"):
        Cascade("x", {"m": 4}, _tensors("X:m", "A:m", "B:m"),
                [Einsum("A", "A[m]", ("B[m]", "X[m]"), "add"), Einsum("B", "B[m]", ("A[m]",))])
    with pytest.raises(WorkloadError, match="cycle: A -> A"):  # no iterative rank: not a recurrence
        Cascade("x", {"m": 4}, _tensors("X:m", "A:m"), [Einsum("A", "A[m]", ("A[m]", "X[m]"), "add")])


def test_other_structural_errors():
    with pytest.raises(WorkloadError, match="tensor U is declared but no einsum uses it"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m", "U:m"), [Einsum("C", "C[m]", ("A[m,k]",), None, "sum")])
    with pytest.raises(WorkloadError, match="einsum name C is used twice"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m", "D:m"),
                [Einsum("C", "C[m]", ("A[m,k]",), None, "sum"), Einsum("C", "D[m]", ("C[m]",))])
    with pytest.raises(WorkloadError, match="rank k: extent must be a positive integer"):
        Cascade("x", {"m": 4, "k": 0}, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m,k]",), None, "sum")])
    with pytest.raises(WorkloadError, match="iterative rank 'r' is not a defined rank"):
        Cascade("x", RANKS, _tensors("A:mk", "C:m"), [Einsum("C", "C[m]", ("A[m,k]",), None, "sum")], {"r": 2})


# --- iterative ranks -------------------------------------------------------------------------

LOOP_RANKS = {"r": 5, "p": 2}


def test_running_tensor_needs_initial():
    with pytest.raises(WorkloadError, match="running tensor S needs an initial value"):
        Cascade("x", LOOP_RANKS, [Tensor("X", ("r", "p")), Tensor("S", ("r", "p"))],
                [Einsum("S", "S[r+1,p]", ("S[r,p]", "X[r,p]"), "add")], {"r": 5})


def test_loop_einsum_must_keep_the_iterative_rank():
    with pytest.raises(WorkloadError, match="einsum T: runs in the r loop"):
        Cascade("x", LOOP_RANKS, [Tensor("X", ("r", "p")), Tensor("T", ("p",))],
                [Einsum("T", "T[p]", ("X[r,p]",), None, "sum")], {"r": 5})


def test_partial_writes_of_a_running_tensor():
    ranks = {"r": 4, "p": 3}
    tensors = [Tensor("X", ("r", "p")), Tensor("I", ("p",)), Tensor("S", ("r", "p"))]
    init = Einsum("S0", "S[0,p]", ("I[p]",))
    step = Einsum("S", "S[r+1,p]", ("S[r,p]", "X[r,p]"), "max")
    c = Cascade("x", ranks, tensors, [step, init], {"r": 4})
    assert [e.name for e in c.einsums] == ["S0", "S"]  # the initialiser runs before the loop
    assert c.tensor_shape("S") == (5, 3)
    overlapping = Einsum("S1", "S[1,p]", ("I[p]",))
    with pytest.raises(WorkloadError, match="running tensor S: einsums .* both write r in 1..1"):
        Cascade("x", ranks, tensors, [init, step, overlapping], {"r": 4})


def test_einsum_outside_a_loop_cannot_sit_inside_it():
    ranks = {"r": 3, "p": 2}
    tensors = [Tensor("X", ("r", "p")), Tensor("S", ("r", "p"), initial=0.0), Tensor("L", ("p",)),
               Tensor("Y", ("r", "p"))]
    einsums = [
        Einsum("S", "S[r+1,p]", ("S[r,p]", "X[r,p]"), "add"),
        Einsum("L", "L[p]", ("S[2,p]",)),  # reads the loop's result ...
        Einsum("Y", "Y[r,p]", ("S[r+1,p]", "L[p]"), "mul"),  # ... and the loop reads L
    ]
    with pytest.raises(WorkloadError, match="einsum L does not iterate over r"):
        Cascade("x", ranks, tensors, einsums, {"r": 3})


# --- plain-dict form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cascade",
    [gemm(8, 4, 2, dtype="bf16"), softmax(3, 5), attention_1pass(4, 3, 5, 8, 4), attention_3pass(2, 3, 4, 5),
     gemms_from_list([("a", 2, 3, 4), ("b", 5, 6, 7)])],
    ids=lambda c: c.name,
)
def test_dict_round_trip(cascade):
    d = cascade.to_dict()
    assert Cascade.from_dict(d) == cascade
    assert Cascade.from_dict(yaml.safe_load(yaml.safe_dump(d))) == cascade
    assert Cascade.from_dict(d).to_dict() == d


def test_dict_round_trip_with_unary_args():
    c = Cascade("u", {"m": 3}, [Tensor("X", ("m",)), Tensor("Y", ("m",), "fp32")],
                [Einsum("Y", "Y[m]", ("X[m]",), unary=("exp", ("scale", 0.125)))])
    d = c.to_dict()
    assert d["einsums"][0]["unary"] == ["exp", {"op": "scale", "arg": 0.125}]
    assert Cascade.from_dict(yaml.safe_load(yaml.safe_dump(d))) == c


def test_from_dict_accepts_the_documented_form():
    text = """
    name: mm
    ranks: {m: 4, n: 2, k: 3}
    tensors:
      A: {ranks: [m, k]}
      B: {ranks: [k, n], dtype: int8}
      C: {ranks: [m, n], dtype: fp32}
    einsums:
      - {name: C, out: "C[m,n]", in: ["A[m,k]", "B[k,n]"], map: mul, reduce: sum,
         unary: [relu, {op: scale, arg: 0.5}]}
    """
    c = Cascade.from_dict(yaml.safe_load(text))
    assert c.tensor("B").dtype == "int8"
    assert c.einsum("C").unary[1].arg == 0.5
    assert c.op_counts() == {"mac": 24, "relu": 8, "scale": 8}


def _gemm_dict():
    return gemm(4, 2, 3).to_dict()


def test_from_dict_unknown_key_has_path_and_suggestion():
    d = _gemm_dict()
    d["einsums"][0]["reduc"] = d["einsums"][0].pop("reduce")
    with pytest.raises(WorkloadError, match="unknown key 'reduc' \\(did you mean 'reduce'\\?\\)") as info:
        Cascade.from_dict(d)
    assert info.value.path == ("einsums", 0, "reduc")
    assert str(info.value).startswith("einsums[0].reduc: ")


@pytest.mark.parametrize(
    "edit, path, fragment",
    [
        (lambda d: d.update(tensor=d.pop("tensors")), ("tensor",), "did you mean 'tensors'"),
        (lambda d: d.pop("ranks"), (), "missing key 'ranks'"),
        (lambda d: d["tensors"]["A"].update(dtype="fp12"), ("tensors", "A"), "unknown dtype 'fp12'"),
        (lambda d: d["tensors"]["A"].update(rank=["m"]), ("tensors", "A", "rank"), "did you mean 'ranks'"),
        (lambda d: d["einsums"][0]["in"].__setitem__(1, "B[k,n"), ("einsums", 0, "in", 1), "bad tensor access"),
        (lambda d: d["einsums"][0].update(map="mull"), ("einsums", 0, "map"), "did you mean 'mul'"),
        (lambda d: d["einsums"][0]["in"].__setitem__(0, "Z[m,k]"), ("einsums", 0, "in", 0), "undefined tensor 'Z'"),
        (lambda d: d["ranks"].update(k=-1), ("ranks", "k"), "positive integer"),
        (lambda d: d.update(einsums={"name": "C"}), ("einsums",), "must be a list"),
        (lambda d: d["einsums"][0].update(unary=[{"op": "scale"}]), ("einsums", 0, "unary", 0), "needs an arg"),
    ],
)
def test_from_dict_errors_carry_paths(edit, path, fragment):
    d = _gemm_dict()
    edit(d)
    with pytest.raises(WorkloadError, match=fragment) as info:
        Cascade.from_dict(d)
    assert info.value.path == path


def test_initial_as_text_is_accepted():
    d = attention_1pass(2, 2, 2, 4, 2).to_dict()
    d["tensors"]["RM"]["initial"] = "-inf"
    assert Cascade.from_dict(d).tensor("RM").initial == float("-inf")


def test_loops_that_feed_each_other():
    tensors = [Tensor("I", ("r",)), Tensor("X", ("r",)), Tensor("Y", ("s",)), Tensor("Z", ("r",))]
    einsums = [Einsum("X", "X[r]", "I[r]"), Einsum("Y", "Y[s]", "X[s]"), Einsum("Z", "Z[r]", "Y[r]")]
    with pytest.raises(WorkloadError, match="cycle: loop r -> loop s -> loop r"):
        Cascade("x", {"r": 3, "s": 3}, tensors, einsums, {"r": 3, "s": 3})
    # Without the iterative ranks the same Einsums are an ordinary chain.
    assert [e.name for e in Cascade("x", {"r": 3, "s": 3}, tensors, einsums).einsums] == ["X", "Y", "Z"]
