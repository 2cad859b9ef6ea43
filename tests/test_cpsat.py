"""The CP-SAT mapper's optimum equals the brute-force oracle's over the same mapspace, exactly."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_arch
from mappers.brute import brute_all, brute_mapping
from mappers.cost import evaluate
from mappers.cpsat import cpsat_mapping
from mappers.errors import MappingError
from mappers.mapping import check_mapping
from mappers.space import enumerate_mappings, space_size
from mappers.view import MatmulView
from sim.engine import simulate

OBJS = ("latency", "energy", "edp")
TIMES: list[float] = []  # CP-SAT solve seconds, printed at the end with -s


def view(sizes: dict[str, int], groups: dict[str, tuple[str, ...]], name: str = "g") -> MatmulView:
    """A GEMM-like view with fp16 operands."""
    return MatmulView(name, {"input": "A", "weight": "B", "output": "C"},
                      {g: tuple(groups.get(g, ())) for g in ("batch", "m", "n", "k")}, dict(sizes),
                      {"input": 2.0, "weight": 2.0, "output": 2.0})


def gemm(m: int, n: int, k: int, b: int | None = None) -> MatmulView:
    sizes = {"m": m, "n": n, "k": k} | ({"b": b} if b else {})
    return view(sizes, {"batch": ("b",) if b else (), "m": ("m",), "n": ("n",), "k": ("k",)})


def attention(b: int, h: int, m: int, n: int, k: int) -> MatmulView:
    """Q·Kᵀ-like: batch and heads are batch ranks."""
    return view({"b": b, "h": h, "m": m, "n": n, "k": k}, {"batch": ("b", "h"), "m": ("m",), "n": ("n",), "k": ("k",)})


ARCHS = {
    "os2": lambda: make_arch(4, 4, "os", dram_bw="8 GB/s", buf_bw="16 GB/s", capacity="2 KiB"),
    "ws2-starved-single": lambda: make_arch(4, 4, "ws", dram_bw="2 GB/s", buf_bw="4 GB/s", capacity="768 B", double=False),
    "is2-split-overlap": lambda: make_arch(8, 4, "is", dram_bw="4 GB/s", buf_bw="12.8 GB/s", capacity="1 KiB",
                                           split_ports=True, overlap=True),
    "ws3": lambda: make_arch(4, 4, "ws", dram_bw="4 GB/s", buf_bw="8 GB/s", capacity="512 B", extra_level="2 KiB"),
    "os3-starved": lambda: make_arch(4, 4, "os", dram_bw="2 GB/s", buf_bw="16 GB/s", capacity="256 B", extra_level="1 KiB"),
}

SHAPES2 = {
    "16x24x32": gemm(16, 24, 32), "12x16x8": gemm(12, 16, 8), "64x8x16": gemm(64, 8, 16), "8x48x12": gemm(8, 48, 12),
    "32x32x8": gemm(32, 32, 8), "24x12x48": gemm(24, 12, 48), "b2x12x16x8": gemm(12, 16, 8, b=2),
    "b3x8x8x16": gemm(8, 8, 16, b=3), "att2x2x16x16x8": attention(2, 2, 16, 16, 8),
}
SHAPES3 = {"8x8x8": gemm(8, 8, 8), "12x8x8": gemm(12, 8, 8), "16x8x12": gemm(16, 8, 12), "b2x8x8x4": gemm(8, 8, 4, b=2)}

CASES = [(a, s) for a in ("os2", "ws2-starved-single", "is2-split-overlap") for s in SHAPES2]
CASES += [(a, s) for a in ("ws3", "os3-starved") for s in SHAPES3]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def check_against_oracle(v: MatmulView, arch, objectives=OBJS, sim: bool = True) -> None:
    """CP-SAT and the oracle agree on every objective; the simulator agrees with evaluate."""
    oracle = brute_all(v, arch, objectives)
    for obj in objectives:
        ref = oracle[obj]
        start = time.perf_counter()
        got = cpsat_mapping(v, arch, obj, time_limit_s=20.0, seed=0, workers=2)
        TIMES.append(time.perf_counter() - start)
        assert got.status == "OPTIMAL", (obj, got)
        check_mapping(got.mapping, v, arch)
        cost = evaluate(v, got.mapping, arch)
        assert cost == got.cost
        if obj == "latency":
            assert got.objective_value == ref.objective_value
            assert got.bound == ref.objective_value
        else:
            assert _close(got.objective_value, ref.objective_value), (obj, got.objective_value, ref.objective_value)
            assert _close(got.bound, ref.objective_value)  # the model's value is evaluate's value
        if sim:
            assert simulate(v, ref.mapping, arch).traffic == ref.cost.traffic


@pytest.mark.parametrize("arch_name,shape", CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_cpsat_equals_brute_force(arch_name: str, shape: str) -> None:
    v = (SHAPES2 | SHAPES3)[shape]
    check_against_oracle(v, ARCHS[arch_name]())


def test_space_enumeration_is_valid_and_distinct() -> None:
    v, arch = gemm(8, 4, 6), ARCHS["ws3"]()
    maps = list(enumerate_mappings(v, arch))
    assert len(maps) == space_size(v, arch) > 0
    texts = {m.to_yaml(v) for m in maps}
    assert len(texts) == len(maps)
    for m in maps[::37]:
        check_mapping(m, v, arch)


def test_lex_objective_matches() -> None:
    v, arch = gemm(16, 24, 32), ARCHS["os2"]()
    ref = brute_mapping(v, arch, "lex")
    got = cpsat_mapping(v, arch, "lex", time_limit_s=20.0)
    assert got.status == "OPTIMAL"
    assert got.objective_value[0] == ref.objective_value[0]
    assert _close(got.objective_value[1], ref.objective_value[1])


def test_deterministic_with_fixed_seed() -> None:
    v, arch = gemm(12, 16, 8, b=2), ARCHS["os2"]()
    a = cpsat_mapping(v, arch, "edp", seed=3, workers=2)
    b = cpsat_mapping(v, arch, "edp", seed=3, workers=2)
    assert a.objective_value == b.objective_value


@pytest.mark.parametrize("extra", [None, "8 B"])
def test_infeasible_names_level(extra) -> None:
    arch = make_arch(4, 4, "os", capacity="8 B" if extra is None else "4 KiB", extra_level=extra)
    level = "buffer" if extra is None else "l2"
    v = gemm(8, 8, 8)
    for mapper in (lambda: cpsat_mapping(v, arch, "edp"), lambda: brute_mapping(v, arch, "edp")):
        with pytest.raises(MappingError, match=f"'{level}'") as err:
            mapper()
        assert "12 B" in str(err.value)  # the smallest tile, double-buffered: 2 × (2 + 2 + 2) B


@settings(max_examples=6, deadline=None, derandomize=True)
@given(m=st.sampled_from([2, 4, 6, 8, 12]), n=st.sampled_from([2, 4, 8, 12]), k=st.sampled_from([2, 4, 6, 8]),
       b=st.sampled_from([None, 2, 3]), dataflow=st.sampled_from(["os", "ws", "is"]),
       cap=st.sampled_from(["96 B", "256 B", "1 KiB"]), dram=st.sampled_from(["1 GB/s", "4 GB/s", "32 GB/s"]),
       three=st.booleans(), double=st.booleans())
def test_property_random_problems(m, n, k, b, dataflow, cap, dram, three, double) -> None:
    arch = make_arch(4, 4, dataflow, dram_bw=dram, buf_bw="8 GB/s", capacity=cap, double=double,
                     extra_level="1 KiB" if three else None)
    v = gemm(m, n, k, b)
    try:
        brute_mapping(v, arch, "latency")
    except MappingError:
        with pytest.raises(MappingError):
            cpsat_mapping(v, arch, "latency")
        return
    check_against_oracle(v, arch, OBJS, sim=False)


def test_zz_report_times() -> None:
    """Prints CP-SAT solve times (median/max) of the cases above (visible with -s)."""
    if TIMES:
        s = sorted(TIMES)
        print(f"\ncpsat solves: n={len(s)} median={s[len(s) // 2]:.2f}s max={s[-1]:.2f}s")
