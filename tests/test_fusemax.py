"""FuseMax, FLAT and unfused attention accelerators: the paper's numbers, and the oracles.

The published per-point results (sim/reference/fusemax.csv, from the paper's artifact) are the
targets; closed forms (the reference's traffic and latency formulas), conservation (MACs,
traffic >= compulsory, latency >= roofline) and full simulation (for the extrapolation) are the
oracles.
"""

from __future__ import annotations

import pytest

import sim.attention_accel as acc
from arch.loader import load_arch
from sim.attention_accel import (AttentionShape, FUSEMAX_BINDING, THREE_PASS_BINDING, Hardware, flat_traffic,
                                 fusemax_p1, simulate_attention)
from sim.attention_study import (LENGTHS, attention_grid, encoder_grid, fusemax_formula_seconds, headline,
                                 reference, side_by_side)
from sim.errors import InputError
from workloads.builders import attention_1pass, attention_3pass
from workloads.zoo import load_model

BERT = {"BERT": "bert-base"}


@pytest.fixture(scope="module")
def ref():
    return reference()


@pytest.fixture(scope="module")
def bert(ref):
    return side_by_side(attention_grid(BERT), ref)


@pytest.fixture(scope="module")
def grid():
    return attention_grid()


def test_bert_latency_within_10_percent_of_the_paper(bert):
    worst = bert.latency_s_ratio.sub(1).abs().max()
    assert worst <= 0.10, bert[["seq", "accelerator", "latency_s", "latency_s_paper"]]


def test_bert_utilization_within_003_of_the_paper(bert):
    assert bert.util_2d_diff.abs().max() <= 0.03
    assert bert.util_1d_diff.abs().max() <= 0.03


def test_bert_dram_traffic_within_10_percent_for_fusemax_and_flat(bert):
    rows = bert[bert.accelerator.isin(["fusemax", "flat"])]
    assert rows.dram_bytes_ratio.sub(1).abs().max() <= 0.10
    # FuseMax's traffic is the reference's closed form exactly
    assert (bert[bert.accelerator == "fusemax"].dram_bytes_ratio.sub(1).abs() < 1e-9).all()


def test_bert_fusemax_energy_within_10_percent(bert):
    rows = bert[bert.accelerator == "fusemax"]
    assert rows.energy_pj_ratio.sub(1).abs().max() <= 0.10


def test_mean_attention_speedups_over_the_24_points(grid, ref):
    ours = headline(grid)
    assert ours["attention speedup over FLAT"] == pytest.approx(6.7, rel=0.10)
    assert ours["attention speedup over unfused"] == pytest.approx(10.0, rel=0.10)
    # and the reference file itself gives the paper's headline (it is read right)
    paper = headline(ref[ref.part == "attention"], ref[ref.part == "linear"])
    assert paper["attention speedup over FLAT"] == pytest.approx(6.7, abs=0.05)
    assert paper["attention energy / FLAT"] == pytest.approx(0.79, abs=0.005)
    assert paper["end-to-end speedup over FLAT"] == pytest.approx(5.3, abs=0.05)
    assert paper["end-to-end energy / FLAT"] == pytest.approx(0.83, abs=0.005)


@pytest.mark.xfail(strict=True, reason="known gap: ours 0.853 (FuseMax +4 %, FLAT -3..-10 % against the "
                   "artifact's per-point energies); FLAT's register file and buffer in the artifact are other "
                   "components whose per-access energies are unpublished, so the FLAT presets borrow FuseMax's "
                   "(README, attention accelerators)")
def test_mean_attention_energy_ratio_is_079(grid):
    assert headline(grid)["attention energy / FLAT"] == pytest.approx(0.79, abs=0.05)


@pytest.fixture(scope="module")
def linear():
    return encoder_grid()


def test_mean_end_to_end_speedup_is_53(grid, linear):
    assert headline(grid, linear)["end-to-end speedup over FLAT"] == pytest.approx(5.3, rel=0.10)


@pytest.mark.xfail(strict=True, reason="known gap: ours 0.889, from the attention energy gap above")
def test_mean_end_to_end_energy_ratio_is_083(grid, linear):
    assert headline(grid, linear)["end-to-end energy / FLAT"] == pytest.approx(0.83, abs=0.05)


def test_linear_layers_run_near_the_ideal_array_time(linear, ref):
    """The mapped linear layers take at least MACs/65536 cycles, and at most 10 % more."""
    lin = ref[ref.part == "linear"][["model", "seq", "accelerator", "latency_s"]]
    m = linear.merge(lin, on=["model", "seq", "accelerator"], suffixes=("", "_paper"))
    ratio = m.latency_s / m.latency_s_paper
    assert ratio.min() >= 1.0 - 1e-9 and ratio.max() <= 1.10


def test_the_papers_formula_model_reproduces_its_published_fusemax_latency(ref):
    """Our reading of the paper's per-Einsum model (kept for the README's comparison) is right."""
    rows = ref[(ref.part == "attention") & (ref.accelerator == "fusemax")]
    for _, r in rows.iterrows():
        model = load_model({"BERT": "bert-base", "TrXL": "trxl-wt103", "T5": "t5-small-encoder", "XLM": "xlm"}[r.model])
        shape = AttentionShape.of_model(model, LENGTHS[r.seq])
        assert fusemax_formula_seconds(shape) == pytest.approx(r.latency_s, rel=1e-6)


def test_every_point_is_extrapolated_from_few_simulated_events(grid):
    assert grid.extrapolated.all()
    assert grid.events.max() < 2_000_000


# --- oracles -----------------------------------------------------------------------------

SMALL = [
    ("fusemax", AttentionShape(1, 2, 4096, 4096, 64, 64)),
    ("fusemax", AttentionShape(2, 3, 2048, 2048, 64, 64)),
    ("fusemax", AttentionShape(1, 1, 2048, 4096, 128, 128)),
    ("flat", AttentionShape(1, 2, 4096, 4096, 64, 64)),  # fused, fibers on chip
    ("flat", AttentionShape(1, 1, 65536, 65536, 64, 64)),  # fused, spilling
    ("flat", AttentionShape(1, 1, 262144, 262144, 64, 64)),  # QK and A through DRAM
    ("unfused", AttentionShape(1, 4, 4096, 4096, 64, 64)),
]


@pytest.mark.parametrize("dataflow,shape", SMALL)
def test_extrapolated_equals_fully_simulated(dataflow, shape):
    fast = simulate_attention(dataflow, shape)
    full = simulate_attention(dataflow, shape, full=True)
    assert fast.extrapolated and not full.extrapolated
    assert (fast.cycles, fast.busy, fast.tally) == (full.cycles, full.busy, full.tally)


@pytest.mark.parametrize("dataflow,shape", SMALL)
def test_conservation_and_roofline(dataflow, shape):
    r = simulate_attention(dataflow, shape)
    hw = Hardware.of(load_arch(dataflow))
    assert r.tally["pe2d.mac"] == shape.macs  # every QK and AV MAC, once, on the 2D array
    w = shape.word_bytes
    compulsory = shape.instances * w * (shape.queries * shape.e + shape.keys * (shape.e + shape.f)
                                        + shape.queries * shape.f)
    assert r.traffic_bytes >= compulsory
    roofline = max(shape.macs / (hw.rows * hw.cols), r.traffic_bytes / hw.dram_bytes_per_cycle,
                   r.busy["pe1d"], r.busy["pe2d"])
    assert r.cycles >= roofline
    assert all(0 < u <= 1 for u in r.utilization.values())


def test_fusemax_counts_every_op_of_the_1pass_cascade():
    s = AttentionShape(1, 2, 4096, 4096, 64, 64)
    t = simulate_attention("fusemax", s).tally
    n, P, M, F = s.instances, s.queries, s.keys, s.f
    m1 = M // 256
    assert t["pe2d.exp"] == n * P * M  # SLN
    assert t["pe2d.max"] == n * P * M  # LM
    assert t["pe1d.exp"] == n * P * m1  # PRM
    assert t["pe1d.div"] == n * P * F  # AV
    assert t["pe1d.mac"] == n * P * m1 * (1 + F)  # SPD, SPNV


@pytest.mark.parametrize("seq,p1", [(1024, 4), (4096, 16), (16384, 64), (65536, 128), (1048576, 128)])
def test_fusemax_resident_tiles_and_traffic_closed_form(seq, p1):
    s = AttentionShape(64, 12, seq, seq, 64, 64)
    assert fusemax_p1(Hardware.of(load_arch("fusemax")), s) == p1
    r = simulate_attention("fusemax", s)
    P, M, E, F = seq, seq, 64, 64
    assert r.traffic_bytes == 2 * s.instances * (P * E + P * F + P // (256 * p1) * M * (E + F))


def test_fusemax_compute_bound_latency_closed_form():
    s = AttentionShape(64, 12, 2**20, 2**20, 64, 64)
    closed = s.instances * s.keys * s.queries * (s.e + s.f + 9) / (65536 * 940e6)
    assert simulate_attention("fusemax", s).seconds == pytest.approx(closed, rel=0.01)


@pytest.mark.parametrize("seq", [1024, 4096, 65536, 262144])
def test_flat_traffic_is_its_closed_form(seq):
    s = AttentionShape(64, 12, seq, seq, 64, 64)
    r = simulate_attention("flat", s)
    assert r.traffic_bytes == flat_traffic(Hardware.of(load_arch("flat")), s, r.choice["regime"])


def test_flat_spills_only_when_a_query_tiles_scores_outgrow_the_buffer():
    hw = Hardware.of(load_arch("flat"))
    assert acc.flat_regime(hw, AttentionShape(64, 12, 16384, 16384, 64, 64)) == {"regime": "fused", "spilled_tiles": 0}
    assert acc.flat_regime(hw, AttentionShape(64, 12, 65536, 65536, 64, 64))["spilled_tiles"] > 0
    assert acc.flat_regime(hw, AttentionShape(64, 12, 262144, 262144, 64, 64))["regime"] == "offchip"


def test_bindings_cover_the_cascades():
    one = {e.name for e in attention_1pass(64, 64, 512, 512, 256).einsums} - {"BK", "BV"}  # BK, BV: re-indexing
    assert set(FUSEMAX_BINDING["pe2d"]) | set(FUSEMAX_BINDING["pe1d"]) == one
    three = {e.name for e in attention_3pass(64, 64, 512, 512).einsums}
    assert set(THREE_PASS_BINDING["pe2d"]) | set(THREE_PASS_BINDING["pe1d"]) == three


def test_fewer_epochs_in_flight_starve_the_1d_array(monkeypatch):
    s = AttentionShape(64, 12, 1024, 1024, 64, 64)
    assert simulate_attention("fusemax", s).utilization["pe1d"] > 0.999
    monkeypatch.setattr(acc, "FUSEMAX_WINDOW", 2)
    assert simulate_attention("fusemax", s).utilization["pe1d"] < 0.95


def test_flat_edge_preset_runs_and_is_memory_or_compute_bound():
    s = AttentionShape(64, 12, 1024, 1024, 64, 64)
    r = simulate_attention("flat-edge", s)
    assert r.dataflow == "flat" and r.cycles >= max(r.busy.values())
    assert max(r.utilization.values()) > 0.9


def test_deterministic():
    s = AttentionShape(2, 2, 4096, 4096, 64, 64)
    assert simulate_attention("fusemax", s) == simulate_attention("fusemax", s)


@pytest.mark.parametrize("arch,shape,words", [
    ("tpu-like", AttentionShape(1, 1, 1024, 1024, 64, 64), "no attention dataflow"),
    ("fusemax", AttentionShape(1, 1, 1000, 1000, 64, 64), "multiples of the 256x256"),
])
def test_bad_input_is_one_line(arch, shape, words):
    with pytest.raises(InputError) as e:
        simulate_attention(arch, shape)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_the_fusemax_dataflow_needs_its_ops():
    with pytest.raises(InputError, match=r"compute\[pe2d\]\.ops lacks max, add, exp"):
        simulate_attention("flat", AttentionShape(1, 1, 1024, 1024, 64, 64), dataflow="fusemax")



def test_cli_attention_json_and_layer(capsys):
    import json

    from sim.cli import main

    assert main(["attention", "--arch", "fusemax", "--model", "bert-base", "--seq", "4096", "--layer", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataflow"] == "fusemax" and out["schedule"] == {"p1": 16}
    assert out["latency_s"] == pytest.approx(0.0297, rel=0.01)
    assert out["layer"]["latency_s"] == pytest.approx(out["latency_s"] + out["linear"]["latency_s"])
    assert out["macs"] == 64 * 12 * 4096 * 4096 * 128


@pytest.mark.parametrize("argv,words", [
    (["attention", "--arch", "tpu-like", "--model", "bert-base", "--seq", "1024"], "no attention dataflow"),
    (["attention", "--arch", "fusemax", "--model", "bert-base", "--seq", "1000"], "multiples of the 256x256"),
    (["attention", "--arch", "fusemax", "--model", "no-such-model", "--seq", "1024"], "no-such-model"),
])
def test_cli_attention_bad_input_exits_2_with_one_line(argv, words, capsys):
    from sim.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
