"""Mapper selection: search_mapping against the oracle, evaluate(mapper=...), and ``einsim map``."""

from __future__ import annotations

import pytest
import yaml

from conftest import make_arch
from mappers.brute import brute_mapping
from mappers.cost import evaluate as model_cost
from mappers.mapping import check_mapping
from mappers.search import random_valid_mappings, search_mapping
from mappers.view import MatmulView
from conftest import GEMM_CASCADE
from sim.cli import main
from sim.run import evaluate


SMALL_ARCH = """\
name: small
clocks: {core: 1 GHz}
memories:
  - name: dram
    word_bits: 16
    ports: [{name: rw, bandwidth: 8 GB/s}]
    read_energy: 100 pJ
    write_energy: 120 pJ
  - name: buffer
    capacity: 2 KiB
    word_bits: 16
    ports: [{name: rw, bandwidth: 16 GB/s}]
    read_energy: 6 pJ
    write_energy: 7 pJ
compute:
  - name: array
    rows: 4
    cols: 4
    dataflow: os
    ops: {mac: {cycles: 1, energy: 1 pJ}}
"""


def gemm(m: int, n: int, k: int) -> MatmulView:
    return MatmulView("g", {"input": "A", "weight": "B", "output": "C"},
                      {"batch": (), "m": ("m",), "n": ("n",), "k": ("k",)}, {"m": m, "n": n, "k": k},
                      {"input": 2.0, "weight": 2.0, "output": 2.0})


TINY = [
    (lambda: make_arch(4, 4, "os", dram_bw="8 GB/s", buf_bw="16 GB/s", capacity="2 KiB"), gemm(12, 16, 8)),
    (lambda: make_arch(4, 4, "ws", dram_bw="2 GB/s", buf_bw="4 GB/s", capacity="768 B", double=False), gemm(64, 8, 16)),
    (lambda: make_arch(4, 4, "os", dram_bw="2 GB/s", buf_bw="16 GB/s", capacity="256 B", extra_level="1 KiB"), gemm(8, 8, 8)),
]


@pytest.mark.parametrize("case", range(len(TINY)))
def test_search_reaches_the_oracle_on_tiny_cases(case):
    make, view = TINY[case]
    arch = make()
    best = brute_mapping(view, arch, "edp")
    r = search_mapping(view, arch, "edp", samples=300, anneal_steps=600, seed=1)
    check_mapping(r.mapping, view, arch)
    assert r.status == "FEASIBLE"
    assert r.objective_value == pytest.approx(best.objective_value)
    cost = model_cost(view, r.mapping, arch)
    assert cost.energy_pj * cost.latency_cycles == pytest.approx(r.objective_value)


@pytest.mark.parametrize("objective", ["latency", "energy", "edp", "lex"])
def test_search_is_deterministic_and_never_beats_the_oracle(objective):
    arch = make_arch(4, 4, "ws", dram_bw="4 GB/s", buf_bw="8 GB/s", capacity="1 KiB")
    view = gemm(16, 24, 32)
    best = brute_mapping(view, arch, objective)
    a = search_mapping(view, arch, objective, samples=100, anneal_steps=200, seed=7)
    b = search_mapping(view, arch, objective, samples=100, anneal_steps=200, seed=7)
    assert a.mapping == b.mapping and a.objective_value == b.objective_value
    assert a.objective_value >= best.objective_value


def test_random_valid_mappings_are_valid_and_seeded():
    arch = make_arch(4, 4, "os", dram_bw="8 GB/s", capacity="1 KiB", extra_level="4 KiB")
    view = gemm(16, 8, 12)
    ms = random_valid_mappings(view, arch, 50, seed=3)
    assert len(ms) == 50 and ms == random_valid_mappings(view, arch, 50, seed=3)
    for m in ms:
        check_mapping(m, view, arch)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mm.yaml").write_text(GEMM_CASCADE)
    (tmp_path / "small.yaml").write_text(SMALL_ARCH)
    return tmp_path


def test_evaluate_cpsat_is_brute_force_optimal(files):
    from arch import load_arch

    arch = load_arch(files / "small.yaml")
    view = gemm(16, 24, 32)
    best = brute_mapping(view, arch, "edp")
    res = evaluate(arch, str(files / "mm.yaml"), mapper="cpsat", objective="edp", time_limit_s=20)
    (e,) = res.einsums
    assert e.mapping.notes["mapper"] == "cpsat" and e.mapping.notes["status"] == "OPTIMAL"
    assert e.model.energy_pj * e.model.latency_cycles == pytest.approx(best.objective_value)
    greedy = evaluate(arch, str(files / "mm.yaml")).einsums[0]
    assert greedy.mapping.notes == {}  # the default is unchanged
    assert e.model.energy_pj * e.model.latency_cycles <= greedy.model.energy_pj * greedy.model.latency_cycles
    srch = evaluate(arch, str(files / "mm.yaml"), mapper="search").einsums[0]
    assert srch.mapping.notes["mapper"] == "search"


def test_cache_key_includes_mapper_and_objective(files):
    cache: dict = {}
    arch, wl = str(files / "small.yaml"), str(files / "mm.yaml")
    lat = evaluate(arch, wl, cache=cache, mapper="search", objective="latency").einsums[0]
    en = evaluate(arch, wl, cache=cache, mapper="search", objective="energy").einsums[0]
    g = evaluate(arch, wl, cache=cache).einsums[0]
    assert len(cache) == 3
    assert lat.model.latency_cycles <= en.model.latency_cycles and en.model.energy_pj <= lat.model.energy_pj
    assert g.mapping.notes == {}


def test_map_writes_yaml_that_run_reproduces(files, capsys):
    out = files / "mapping.yaml"
    arch, wl = str(files / "small.yaml"), str(files / "mm.yaml")
    assert main(["map", "--arch", arch, "--workload", wl, "--mapper", "cpsat", "--objective", "edp", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "for " in printed and "compute tile on array" in printed
    data = yaml.safe_load(out.read_text())
    assert isinstance(data, list) and data[0]["einsum"] == "C" and data[0]["notes"]["mapper"] == "cpsat"
    assert main(["run", "--arch", arch, "--workload", wl, "--mapping", str(out), "--json"]) == 0
    import json

    given = json.loads(capsys.readouterr().out)
    assert main(["run", "--arch", arch, "--workload", wl, "--mapper", "cpsat", "--json"]) == 0
    solved = json.loads(capsys.readouterr().out)
    assert given["latency_cycles"] == solved["latency_cycles"]


def test_mapper_flag_choices(files, capsys):
    arch, wl = str(files / "small.yaml"), str(files / "mm.yaml")
    assert main(["run", "--arch", arch, "--workload", wl, "--mapper", "search", "--objective", "latency",
                 "--show-mapping"]) == 0
    assert "compute tile" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["run", "--arch", arch, "--workload", wl, "--mapper", "magic"])
    assert exc.value.code == 2


@pytest.mark.parametrize("mapper", ["greedy", "cpsat", "search"])
def test_infeasible_map_is_one_line_exit_2(files, capsys, mapper):
    (files / "tiny.yaml").write_text(SMALL_ARCH.replace("capacity: 2 KiB", "capacity: 8 B"))
    code = main(["map", "--arch", str(files / "tiny.yaml"), "--workload", str(files / "mm.yaml"),
                 "--mapper", mapper, "-o", str(files / "x.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("einsim: error:") and "buffer" in err and " B" in err
    assert not (files / "x.yaml").exists()


def test_search_over_padded_and_bypass_spaces():
    """search and the random sampler honour padded tiles and bypass: their mappings are valid,
    lie in the wider space, and never beat its exact optimum."""
    two = make_arch(4, 4, "os", dram_bw="8 GB/s", buf_bw="16 GB/s", capacity="2 KiB")
    three = make_arch(4, 4, "os", dram_bw="2 GB/s", buf_bw="16 GB/s", capacity="256 B", extra_level="1 KiB")
    for arch, view, kw in ((two, gemm(13, 7, 9), {"padded": True}), (three, gemm(12, 8, 8), {"bypass": True})):
        best = brute_mapping(view, arch, "edp", **kw)
        found = search_mapping(view, arch, "edp", **kw)
        check_mapping(found.mapping, view, arch)
        assert found.objective_value >= best.objective_value
        drawn = random_valid_mappings(view, arch, 60, seed=1, **kw)
        for m in drawn:
            check_mapping(m, view, arch)
        if "padded" in kw:
            assert any(view.sizes[r] % m.levels[1].tile[r] for m in drawn for r in view.ranks)
        else:
            assert len({m.levels[1].bypass for m in drawn}) > 1


def test_map_padded_writes_uneven_tiles_that_run_reproduces(files, capsys):
    """``einsim map --padded`` on a prime-sized GEMM: an OPTIMAL mapping no worse than the
    perfect-factor one, with trips ceil(extent / tile), that ``run --mapping`` simulates as solved."""
    arch = files / "small.yaml"
    out = files / "padded.yaml"
    wl = "gemm:13,7,9"
    assert main(["map", "--arch", str(arch), "--workload", wl, "--mapper", "cpsat", "--padded", "-o", str(out)]) == 0
    capsys.readouterr()
    data = yaml.safe_load(out.read_text())[0]
    assert data["notes"]["mapper"] == "cpsat" and data["notes"]["status"] == "OPTIMAL"
    import json

    assert main(["run", "--arch", str(arch), "--workload", wl, "--mapping", str(out), "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert main(["run", "--arch", str(arch), "--workload", wl, "--mapper", "cpsat", "--padded", "--json"]) == 0
    padded = json.loads(capsys.readouterr().out)
    assert main(["run", "--arch", str(arch), "--workload", wl, "--mapper", "cpsat", "--json"]) == 0
    perfect = json.loads(capsys.readouterr().out)
    assert given["latency_cycles"] == padded["latency_cycles"]
    assert padded["latency_cycles"] * padded["energy_pj"] <= perfect["latency_cycles"] * perfect["energy_pj"]


def test_map_padded_on_a_large_two_level_space_is_enumerated(tmp_path, capsys):
    """``einsim map --padded`` on a BERT FFN GEMM (272,250 table rows, which once sent cpsat to
    search): the space is enumerated, and the note says so, with the mapping count."""
    out = tmp_path / "m.yaml"
    assert main(["map", "--arch", "tpu-like", "--workload", "gemm:512,3072,768", "--mapper", "cpsat", "--padded",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    notes = yaml.safe_load(out.read_text())[0]["notes"]
    assert notes["mapper"] == "cpsat" and notes["status"] == "OPTIMAL" and notes["enumerated"] == 1_580_228
    assert notes["bound"] > 0


def test_padded_on_three_levels_is_one_line_exit_2(files, capsys):
    three = SMALL_ARCH.replace("  - name: buffer\n", "  - name: l2\n    capacity: 1 MiB\n    word_bits: 16\n"
                               "    ports: [{name: rw, bandwidth: 16 GB/s}]\n    read_energy: 20 pJ\n"
                               "    write_energy: 20 pJ\n  - name: buffer\n")
    (files / "three.yaml").write_text(three)
    code = main(["map", "--arch", str(files / "three.yaml"), "--workload", "gemm:13,7,9", "--mapper", "cpsat",
                 "--padded", "-o", str(files / "x.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--padded: padded tiles need two memory levels; 'small' has 3" in err
