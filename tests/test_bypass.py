"""Keep/bypass per tensor and memory level: the analytical model and the event simulator agree on
every bypass choice of a middle level; bypass frees capacity, survives YAML, and is validated."""

from __future__ import annotations

from itertools import combinations

import pytest
import yaml

from arch import ROLES, Link
from conftest import make_arch
from mappers import LevelMapping, Mapping, MappingError, MatmulView, check_mapping, evaluate, mapping_from_dict
from mappers.cost import boundary_reps, energy_breakdown
from sim.engine import simulate

SUBSETS = [c for n in range(len(ROLES) + 1) for c in combinations(ROLES, n)]


def view(sizes: dict[str, int], batch: tuple[str, ...] = (), elem=(2, 2, 2)) -> MatmulView:
    """A (batched) GEMM C[b,m,n] = Σ_k A[b,m,k]·B[b,k,n] with the given bytes per element."""
    return MatmulView("C", {"input": "A", "weight": "B", "output": "C"},
                      {"batch": batch, "m": ("m",), "n": ("n",), "k": ("k",)}, dict(sizes),
                      dict(zip(ROLES, elem)))


def tiles(**t: int) -> dict[str, int]:
    return dict(t)


# (view, l2 tile, buffer tile, dram loop order, l2 loop order)
SHAPES = {
    "8x8x8": (view({"m": 8, "n": 8, "k": 8}), tiles(m=4, n=8, k=4), tiles(m=4, n=4, k=2),
              ("k", "n", "m"), ("m", "k", "n")),
    "16x12x8": (view({"m": 16, "n": 12, "k": 8}), tiles(m=8, n=6, k=8), tiles(m=4, n=3, k=4),
                ("m", "n", "k"), ("k", "m", "n")),
    "12x8x16": (view({"m": 12, "n": 8, "k": 16}), tiles(m=6, n=8, k=8), tiles(m=3, n=4, k=4),
                ("n", "k", "m"), ("n", "m", "k")),
    "16x16x16-k-outer": (view({"m": 16, "n": 16, "k": 16}), tiles(m=8, n=8, k=8), tiles(m=4, n=4, k=4),
                         ("k", "m", "n"), ("m", "n", "k")),
    "b2x8x4x8-mixed-bytes": (view({"b": 2, "m": 8, "n": 4, "k": 8}, ("b",), (1, 2, 4)), tiles(b=2, m=8, n=4, k=4),
                             tiles(b=1, m=4, n=2, k=2), ("k", "b", "m", "n"), ("n", "k", "b", "m")),
}


def arch3(dataflow: str = "ws", dram_bw: str = "8 GB/s", buf_bw: str = "16 GB/s", l2: str = "64 KiB",
          link_bw: str | None = None):
    """DRAM → l2 → buffer → 4×4 array; with ``link_bw``, a dram–buffer link (used only by bypasses)."""
    arch = make_arch(4, 4, dataflow, dram_bw=dram_bw, buf_bw=buf_bw, extra_level=l2)
    if link_bw is None:
        return arch
    return arch.model_copy(update={"links": (Link(name="bus", src="dram", dst="buffer", bandwidth=link_bw,
                                                  energy="0.5 pJ/bit"),)})


def mapping(v: MatmulView, shape: str, dataflow: str, bypass: tuple[str, ...] = ()) -> Mapping:
    """The SHAPES entry's three-level mapping, the l2 bypassing ``bypass``."""
    _, mid, inner, o0, o1 = SHAPES[shape]
    return Mapping("C", "array", dataflow, (
        LevelMapping("dram", dict(v.sizes), o0),
        LevelMapping("l2", dict(mid), o1, bypass),
        LevelMapping("buffer", dict(inner))))


CASES = [(s, df, bp) for s in SHAPES for df in ("ws", "os", "is") for bp in SUBSETS]


@pytest.mark.parametrize("shape,dataflow,bypass", CASES, ids=[f"{s}-{df}-{'+'.join(bp) or 'none'}" for s, df, bp in CASES])
def test_model_equals_simulator(shape: str, dataflow: str, bypass: tuple[str, ...]) -> None:
    v = SHAPES[shape][0]
    arch = arch3(dataflow, link_bw="6 GB/s")
    m = mapping(v, shape, dataflow, bypass)
    check_mapping(m, v, arch)
    stats, cost = simulate(v, m, arch), evaluate(v, m, arch)
    # traffic per memory and tensor, exactly; MACs; energy (links included) from the same counts
    assert stats.traffic == cost.traffic
    assert stats.macs == cost.macs == v.macs
    assert stats.compute_cycles == cost.compute_cycles
    assert energy_breakdown(arch, arch.unit(), stats.traffic, stats.crossing, stats.ops) == cost.energy_breakdown
    for role in ROLES:
        t = v.tensors[role]
        if role in bypass:
            # the l2 never sees a bypassed role; its tiles cross dram ↔ buffer as often as at boundary 2
            assert stats.traffic["l2"][t] == {"read": 0.0, "write": 0.0}
            reps = boundary_reps(m, v, 2)[role] * v.tile_bytes(role, v.sizes)
            assert stats.traffic["dram"][t]["write" if role == "output" else "read"] == reps
        else:
            assert stats.traffic["l2"][t]["write"] > 0
    assert stats.crossing.get(("dram", "buffer"), 0.0) == sum(
        stats.traffic["dram"][v.tensors[r]][d] for r in bypass for d in ("read", "write"))
    assert (cost.energy_breakdown["bus.transfer"] > 0) == bool(bypass)


@pytest.mark.parametrize("bypass", SUBSETS, ids=["+".join(bp) or "none" for bp in SUBSETS])
@pytest.mark.parametrize("shape", ["16x12x8", "16x16x16-k-outer", "b2x8x4x8-mixed-bytes"])
def test_latency_exact_when_nothing_contends(shape: str, bypass: tuple[str, ...]) -> None:
    """Fast memories and a (slower) dram–buffer link: the first loads and last write-backs follow
    the kept pairs over the right ports, so the model's latency is the simulated one."""
    v = SHAPES[shape][0]
    arch = arch3("ws", dram_bw="1000 GB/s", buf_bw="unbounded", link_bw="200 GB/s")
    m = mapping(v, shape, "ws", bypass)
    stats, cost = simulate(v, m, arch), evaluate(v, m, arch)
    assert stats.latency_cycles == cost.latency_cycles


@pytest.mark.parametrize("bypass", SUBSETS, ids=["+".join(bp) or "none" for bp in SUBSETS])
@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
def test_one_port_serving_two_links_keeps_latency_above_roofline(dataflow: str, bypass: tuple[str, ...]) -> None:
    """With bypass the dram port feeds the l2 at its own rate and the buffer over a slower link:
    the model must time each peer's bytes at that peer's rate, so its roofline bound stays at or
    below the simulated latency (it once timed the whole port at the last rate seen, and its
    bound exceeded the simulation by up to 2.2x) and its latency stays a lower estimate."""
    for shape in SHAPES:
        v = SHAPES[shape][0]
        m = mapping(v, shape, dataflow, bypass)
        for link_bw in ("1 GB/s", "3 GB/s", "6 GB/s", "20 GB/s"):
            arch = arch3(dataflow, dram_bw="8 GB/s", buf_bw="unbounded", link_bw=link_bw)
            stats, cost = simulate(v, m, arch), evaluate(v, m, arch)
            assert cost.bound_cycles <= cost.latency_cycles <= stats.latency_cycles, (shape, link_bw)
            # unless the 4x4 array's peak binds, some port is busy at least as long as the model's
            # busiest one (the simulator rounds each transfer up)
            assert cost.bound_cycles == -(-v.macs // 16) or max(stats.port_busy.values()) >= cost.bound_cycles


def test_no_bypass_unchanged() -> None:
    """Without bypass, kept levels are every level, and model and simulator agree as before."""
    v = SHAPES["16x16x16-k-outer"][0]
    arch = arch3("os")
    m = mapping(v, "16x16x16-k-outer", "os")
    assert [m.kept(r) for r in ROLES] == [[0, 1, 2]] * 3
    assert m.kept_pairs("input") == [(0, 1), (1, 2)]
    stats, cost = simulate(v, m, arch), evaluate(v, m, arch)
    assert stats.traffic == cost.traffic
    assert stats.crossing == {("dram", "l2"): stats.crossing[("dram", "l2")], ("l2", "buffer"): stats.crossing[("l2", "buffer")]}
    # k outermost at dram: C's partial sums go back and forth between dram and l2
    assert cost.traffic["dram"]["C"]["read"] == 16 * 16 * 2 * (2 - 1)
    fast = arch3("os", dram_bw="1000 GB/s", buf_bw="unbounded")
    assert simulate(v, m, fast).latency_cycles == evaluate(v, m, fast).latency_cycles


def test_bypass_frees_capacity() -> None:
    """A 4x32x16 tile (B: 1 KiB) overflows a 1 KiB double-buffered l2, but fits with B bypassed."""
    v = view({"m": 4, "n": 32, "k": 16})
    arch = arch3("ws", l2="1 KiB")
    levels = lambda bypass: (LevelMapping("dram", dict(v.sizes), ("m", "n", "k")),  # noqa: E731
                             LevelMapping("l2", dict(v.sizes), ("m", "n", "k"), bypass),
                             LevelMapping("buffer", {"m": 4, "n": 8, "k": 4}))
    with pytest.raises(MappingError, match="'l2'"):
        check_mapping(Mapping("C", "array", "ws", levels(())), v, arch)
    m = Mapping("C", "array", "ws", levels(("weight",)))
    check_mapping(m, v, arch)
    assert simulate(v, m, arch).traffic == evaluate(v, m, arch).traffic


def test_yaml_round_trip_and_describe() -> None:
    v = SHAPES["16x12x8"][0]
    m = mapping(v, "16x12x8", "ws", ("input", "output"))
    text = m.to_yaml(v)
    assert mapping_from_dict(yaml.safe_load(text)) == m
    assert "bypass: [input, output]" in text
    assert "# l2 holds m=8 n=6 k=8 (bypass: input, output)" in m.describe(v)
    assert m.kept("input") == [0, 2] and m.kept("weight") == [0, 1, 2]
    plain = mapping(v, "16x12x8", "ws")
    assert "bypass" not in plain.to_yaml(v) and "bypass" not in plain.describe(v)
    assert mapping_from_dict(yaml.safe_load(plain.to_yaml(v))) == plain


@pytest.mark.parametrize("level,bypass,words", [
    (0, ("weight",), ["'dram'", "outermost"]),
    (2, ("input",), ["'buffer'", "innermost"]),
    (1, ("bias",), ["'l2'", "unknown role 'bias'"]),
    (1, ("weight", "input"), ["'l2'", "input, weight, output"]),
    (1, ("input", "input"), ["'l2'", "once"]),
])
def test_check_mapping_rejects_bad_bypass(level: int, bypass: tuple[str, ...], words: list[str]) -> None:
    v = SHAPES["8x8x8"][0]
    arch = arch3()
    m = mapping(v, "8x8x8", "ws")
    levels = list(m.levels)
    lv = levels[level]
    levels[level] = LevelMapping(lv.memory, lv.tile, lv.order, bypass)
    with pytest.raises(MappingError) as err:
        check_mapping(Mapping("C", "array", "ws", tuple(levels)), v, arch)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_mapping_from_dict_rejects_non_list_bypass() -> None:
    v = SHAPES["8x8x8"][0]
    d = mapping(v, "8x8x8", "ws").to_dict(v)
    d["levels"][1]["bypass"] = "weight"
    with pytest.raises(MappingError, match=r"levels\[1\]\.bypass"):
        mapping_from_dict(d)
