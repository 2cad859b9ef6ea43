"""The CP-SAT mapper's optimum equals the brute-force oracle's over the same mapspace, exactly."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_arch
from mappers.brute import brute_all, brute_mapping
from mappers.brute_vec import brute_vec_all
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


@pytest.mark.parametrize("arch_name,v,space", [("os2", gemm(16, 24, 32), {}), ("os2", gemm(13, 7, 9), {"padded": True}),
                                               ("os3-starved", gemm(12, 8, 8), {"bypass": True})], ids=["perfect", "padded", "bypass"])
def test_lex_objective_matches(arch_name, v, space) -> None:
    arch = ARCHS[arch_name]()
    ref = brute_mapping(v, arch, "lex", **space)
    got = cpsat_mapping(v, arch, "lex", time_limit_s=20.0, **space)
    assert got.status == "OPTIMAL"
    assert got.objective_value[0] == ref.objective_value[0]
    assert _close(got.objective_value[1], ref.objective_value[1])


def test_deterministic_with_fixed_seed() -> None:
    v, arch = gemm(12, 16, 8, b=2), ARCHS["os2"]()
    a = cpsat_mapping(v, arch, "edp", seed=3, workers=2)
    b = cpsat_mapping(v, arch, "edp", seed=3, workers=2)
    assert a.objective_value == b.objective_value


def test_time_limit_holds_while_large_tables_build(monkeypatch) -> None:
    """Padded tiles of a ViT-sized GEMM give 84,700 table rows (about 15 s to build here, then
    minutes for CP-SAT to load, past its own limit; 210 s on a 60 s limit before this was
    handled): with the tables forced (no enumeration), a 2 s limit returns the seeded search's
    mapping, unproven, well within the limit plus a generous margin for slow machines."""
    import mappers.cpsat as cpsat
    from sim.inputs import resolve_arch

    monkeypatch.setattr(cpsat, "ENUMERATE_ROWS", 10**9)
    v, arch = gemm(197, 768, 768), resolve_arch("tpu-like")
    t0 = time.perf_counter()
    got = cpsat_mapping(v, arch, "edp", time_limit_s=2.0, padded=True)
    assert time.perf_counter() - t0 < 12.0
    assert got.status == "FEASIBLE" and got.bound is None
    check_mapping(got.mapping, v, arch)
    assert got.cost == evaluate(v, got.mapping, arch)


def test_large_two_level_space_is_enumerated_to_the_optimum() -> None:
    """The same ViT-sized padded space (84,700 tilings, 484,192 mappings: too many for the
    tables) is enumerated instead: the brute-force optimum, proven, within the limit, no worse
    than the perfect-factor space's optimum (CP-SAT's tables)."""
    from sim.inputs import resolve_arch

    v, arch = gemm(197, 768, 768), resolve_arch("tpu-like")
    t0 = time.perf_counter()
    got = cpsat_mapping(v, arch, "edp", time_limit_s=30.0, padded=True)
    assert time.perf_counter() - t0 < 30.0
    ref = brute_vec_all(v, arch, ("edp",), padded=True)["edp"]
    assert (got.status, got.objective_value, got.bound) == ("OPTIMAL", ref.objective_value, ref.objective_value)
    assert got.evaluated == ref.evaluated > 400_000
    assert got.cost == evaluate(v, got.mapping, arch)
    assert got.objective_value <= cpsat_mapping(v, arch, "edp", time_limit_s=30.0).objective_value


@pytest.mark.parametrize("shape", ["13x7x9", "b3x7x5x6"])
def test_enumerated_answers_are_the_scalar_brute_force(monkeypatch, shape) -> None:
    """Forced onto the enumeration path, every objective (lex included) is the scalar oracle's,
    with the bound equal to the value."""
    import mappers.cpsat as cpsat

    monkeypatch.setattr(cpsat, "ENUMERATE_ROWS", 0)
    v, arch = PADDED[shape], ARCHS["os2"]()
    ref = brute_all(v, arch, OBJS + ("lex",), padded=True)
    for obj in OBJS + ("lex",):
        got = cpsat_mapping(v, arch, obj, padded=True)
        assert (got.status, got.objective_value, got.bound) == ("OPTIMAL", ref[obj].objective_value, ref[obj].objective_value)
        assert got.evaluated == space_size(v, arch, padded=True)


def test_enumeration_that_outlasts_the_limit_returns_the_search_answer() -> None:
    """An enumeration cut by the time limit leaves the seeded search's mapping, unproven."""
    from mappers.brute_vec import brute_vec_mapping
    from mappers.errors import OutOfTime
    from sim.inputs import resolve_arch

    v, arch = gemm(197, 768, 768), resolve_arch("tpu-like")
    with pytest.raises(OutOfTime):
        brute_vec_mapping(v, arch, "edp", padded=True, deadline=time.perf_counter())
    got = cpsat_mapping(v, arch, "edp", time_limit_s=0.01, padded=True)
    assert got.status == "FEASIBLE" and got.bound is None and got.evaluated == 0
    check_mapping(got.mapping, v, arch)


def test_killable_solve_gives_the_in_process_answer(monkeypatch) -> None:
    """Large models are solved in a forked child (killed past the limit); its answer is the one
    the solver gives in process."""
    import mappers.cpsat as cpsat

    v, arch = gemm(12, 16, 8, b=2), ARCHS["os2"]()
    here = cpsat_mapping(v, arch, "edp", seed=3)
    monkeypatch.setattr(cpsat, "KILLABLE_ROWS", 0)
    child = cpsat_mapping(v, arch, "edp", seed=3)
    assert (child.status, child.objective_value, child.mapping) == (here.status, here.objective_value, here.mapping)


def test_killable_solve_stops_a_solver_that_overruns() -> None:
    from mappers.cpsat import _solve_killable

    t0 = time.perf_counter()
    phase = _solve_killable(lambda: time.sleep(60), 0.2)
    assert phase.status == "UNKNOWN" and phase.values is None
    assert time.perf_counter() - t0 < 10.0


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


def check_wider_space(v: MatmulView, arch, oracle: dict, narrow: dict, **space) -> None:
    """CP-SAT over a widened space (``space``: padded / bypass) proves the oracle's optimum, no
    worse than the ``narrow`` space's, and the simulator counts its mapping's traffic as evaluate does."""
    for obj in OBJS:
        ref = oracle[obj]
        got = cpsat_mapping(v, arch, obj, time_limit_s=20.0, seed=0, workers=2, **space)
        assert got.status == "OPTIMAL", (obj, got)
        check_mapping(got.mapping, v, arch)
        assert got.cost == evaluate(v, got.mapping, arch)
        assert _close(got.objective_value, ref.objective_value), (obj, got.objective_value, ref.objective_value)
        assert ref.objective_value <= narrow[obj].objective_value
        assert simulate(v, got.mapping, arch).traffic == got.cost.traffic


PADDED = {"13x7x9": gemm(13, 7, 9), "23x10x12": gemm(23, 10, 12), "11x17x5": gemm(11, 17, 5),
          "b3x7x5x6": gemm(7, 5, 6, b=3)}
PADDED_CASES = [(a, s) for a in ("os2", "ws2-starved-single", "is2-split-overlap") for s in PADDED]


@pytest.mark.parametrize("arch_name,shape", PADDED_CASES, ids=[f"{a}-{s}" for a, s in PADDED_CASES])
def test_padded_equals_brute_force(arch_name: str, shape: str) -> None:
    """With imperfect tiles CP-SAT, the vectorized oracle and the scalar oracle agree, the space
    holds the perfect one (so its optimum is no worse), and the simulator walks the partial tiles
    to the same traffic."""
    v, arch = PADDED[shape], ARCHS[arch_name]()
    oracle = brute_all(v, arch, OBJS, padded=True)
    vec = brute_vec_all(v, arch, OBJS, padded=True)
    perfect = brute_all(v, arch, OBJS)
    assert vec["edp"].evaluated == oracle["edp"].evaluated == space_size(v, arch, padded=True) > space_size(v, arch)
    check_wider_space(v, arch, oracle, perfect, padded=True)
    for obj in OBJS:
        assert _close(vec[obj].objective_value, oracle[obj].objective_value)


def test_padded_helps_a_prime_extent() -> None:
    """A prime extent has tiles {1, p} only; padded tiles find a strictly better EDP."""
    v, arch = gemm(23, 10, 12), ARCHS["os2"]()
    assert cpsat_mapping(v, arch, "edp", padded=True).objective_value < brute_mapping(v, arch, "edp").objective_value


def test_padded_needs_two_levels() -> None:
    v, arch = gemm(13, 7, 9), ARCHS["ws3"]()
    for mapper in (lambda: cpsat_mapping(v, arch, "edp", padded=True), lambda: brute_mapping(v, arch, "edp", padded=True)):
        with pytest.raises(MappingError, match="padded tiles need two memory levels; '.*' has 3"):
            mapper()


BYPASS_CASES = [("ws3", "8x8x8"), ("os3-starved", "12x8x8"), ("os3-starved", "b2x8x8x4")]


@pytest.mark.parametrize("arch_name,shape", BYPASS_CASES, ids=[f"{a}-{s}" for a, s in BYPASS_CASES])
def test_bypass_equals_brute_force(arch_name: str, shape: str) -> None:
    """With keep/bypass per operand at the middle level, CP-SAT equals the oracle over the same
    (eight times larger) space; the simulator walks the bypassed tiles to the same traffic. (The
    vectorized oracle, which test_brute_vec checks against the scalar one over this space.)"""
    v, arch = SHAPES3[shape], ARCHS[arch_name]()
    oracle = brute_vec_all(v, arch, OBJS, bypass=True)
    keep_all = brute_vec_all(v, arch, OBJS)
    assert oracle["edp"].evaluated == space_size(v, arch, bypass=True) > space_size(v, arch)
    check_wider_space(v, arch, oracle, keep_all, bypass=True)


LINKED = [("ws", True, (8, 8, 4)), ("os", False, (8, 4, 8))]


@pytest.mark.parametrize("dataflow,double,mnk", LINKED, ids=[f"{d}-{'db' if db else 'single'}" for d, db, _ in LINKED])
def test_bypass_over_a_slower_link_equals_brute_force(dataflow: str, double: bool, mnk: tuple) -> None:
    """A bypassed operand reaches the buffer from DRAM over a link slower than DRAM's port, so that
    port serves two peers at two rates; CP-SAT sums each peer's bytes at its rate, as evaluate
    does, and equals the oracle (it used to refuse such models and fall back to search)."""
    from arch import Link

    arch = make_arch(4, 4, dataflow, dram_bw="4 GB/s", buf_bw="8 GB/s", capacity="256 B", double=double,
                     extra_level="1 KiB")
    arch = arch.model_copy(update={"links": (Link(name="bus", src="dram", dst="buffer", bandwidth="1 GB/s",
                                                  energy="0.5 pJ/bit"),)})
    v = gemm(*mnk)
    oracle = brute_vec_all(v, arch, OBJS, bypass=True)
    check_wider_space(v, arch, oracle, brute_vec_all(v, arch, OBJS), bypass=True)
    # an optimum bypasses some operands but not all: DRAM's port then feeds both the l2 and the link
    assert any(0 < len(oracle[obj].mapping.levels[1].bypass) < 3 for obj in OBJS)


def test_bypass_pays_on_a_small_middle_level() -> None:
    """A 256 B l2 between a starved DRAM and the buffer: skipping it beats keeping everything."""
    v, arch = gemm(8, 8, 8), ARCHS["os3-starved"]()
    got = cpsat_mapping(v, arch, "edp", bypass=True)
    assert got.mapping.levels[1].bypass
    assert got.objective_value < brute_mapping(v, arch, "edp").objective_value


@settings(max_examples=4, deadline=None, derandomize=True)
@given(m=st.sampled_from([4, 6, 8]), n=st.sampled_from([4, 8]), k=st.sampled_from([2, 4, 8]),
       dataflow=st.sampled_from(["os", "ws", "is"]), cap=st.sampled_from(["96 B", "256 B"]),
       l2=st.sampled_from(["128 B", "512 B", "2 KiB"]), double=st.booleans())
def test_property_bypass_random_problems(m, n, k, dataflow, cap, l2, double) -> None:
    arch = make_arch(4, 4, dataflow, dram_bw="2 GB/s", buf_bw="8 GB/s", capacity=cap, double=double, extra_level=l2)
    v = gemm(m, n, k)
    try:
        ref = brute_all(v, arch, OBJS, bypass=True)
    except MappingError:
        with pytest.raises(MappingError):
            cpsat_mapping(v, arch, "latency", bypass=True)
        return
    for obj in OBJS:
        got = cpsat_mapping(v, arch, obj, time_limit_s=20.0, bypass=True)
        assert got.status == "OPTIMAL" and _close(got.objective_value, ref[obj].objective_value), (obj, got, ref[obj])
