"""Tiered-memory systems (SN40L-like, DGX-like): presets, placement, the streaming simulation, CoE."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arch import ArchError
from arch.tiered import Tier, list_tiered, load_tiered, with_values
from mappers.placement import Item, PlacementError, brute_place, place
from sim.tiered import coe_capacity, coe_run, expert_bytes, run_pipeline, step, switch_seconds
from workloads.zoo import load_model

LLAMA2_7B = load_model("llama2-7b")
# Values SN-P does not publish, set here for the runs that need them (flagged "unknown" in the preset).
ASSUMED = {"launch.software_us": 9.507, "launch.hardware_us": 1.199, "network.bandwidth": "400 GB/s",
           "network.latency_us": 1.0}


def sn40l(**more):
    return with_values(load_tiered("sn40l"), {**ASSUMED, **more})


def test_presets_load_and_every_value_has_a_source():
    assert [n for n, _ in list_tiered()] == ["dgx-a100", "dgx-h100", "sn40l"]
    for name, _ in list_tiered():
        a = load_tiered(name)
        paths = ["sockets", "peak_tflops", "load_bandwidth", "network.bandwidth", "network.latency_us",
                 "launch.software_us", "launch.hardware_us", "fused_layers"]
        paths += [f"tiers.{t.name}.{k}" for t in a.tiers for k in ("capacity", "bandwidth")]
        missing = [p for p in paths if p not in a.sources]
        assert not missing, (name, missing)
        for p in paths:  # an unknown value is null and says so, never a silent default
            value = a.need(p) if "unknown" not in a.sources[p] else None
            assert value is not None or a.sources[p].startswith("unknown")


def test_unknown_values_are_one_line_errors_and_can_be_given():
    a = load_tiered("sn40l")
    with pytest.raises(ArchError, match=r"launch.software_us is unknown \(unknown: SN-P gives no launch times"):
        step(a, LLAMA2_7B, "decode", kv_len=512)
    with pytest.raises(ArchError, match=r"network.latency_us is unknown \(unknown: SN-P gives no peer-to-peer latency\)"):
        step(with_values(a, {"launch.software_us": 5, "network.bandwidth": "100 GB/s"}), LLAMA2_7B, "decode", kv_len=512)
    b = with_values(a, {"network.latency_us": 2, "sockets": 16, "tiers.hbm.bandwidth": "2 TB/s"})
    assert (b.need("network.latency_us"), b.sockets, b.bytes_per_s(b.tier("hbm").bandwidth)) == (2, 16, 2e12)
    assert b.sources["network.latency_us"].startswith("given")
    with pytest.raises(ArchError, match="has no setting 'launch.sofware_us'"):
        with_values(a, {"launch.sofware_us": 3})


TIERS = st.lists(st.tuples(st.integers(1, 40), st.sampled_from([None, 1, 2, 5, 20])), min_size=2, max_size=3)
ITEMS = st.lists(st.tuples(st.integers(1, 12), st.integers(1, 3), st.integers(0, 30)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(TIERS, ITEMS)
def test_cpsat_placement_equals_brute_force(tiers, items):
    ts = [Tier(name=f"t{i}", capacity=f"{cap} B", bandwidth=None if bw is None else f"{bw} B/s")
          for i, (cap, bw) in enumerate(tiers)]
    its = [Item(f"i{k}", nbytes, count, reads) for k, (nbytes, count, reads) in enumerate(items)]
    try:
        exact = brute_place(its, ts)
    except PlacementError:
        with pytest.raises(PlacementError):
            place(its, ts)
        return
    got = place(its, ts)
    assert got.step_seconds == pytest.approx(exact.step_seconds, rel=1e-9, abs=1e-12)
    for name, cap, _ in [(t.name, t.capacity, None) for t in ts]:
        assert got.free_bytes[name] >= 0


def test_a_model_larger_than_every_tier_gets_one_line_naming_the_shortfall():
    tiny = with_values(sn40l(), {"tiers.hbm.capacity": "1 GB", "tiers.ddr.capacity": "1 GB"})
    with pytest.raises(PlacementError, match=r"placement on sn40l \(1 sockets\): .* do not fit its tiers "
                                             r"\(hbm 1.00 GB \+ ddr 1.00 GB = 2.00 GB\); short by 1[0-9.]+ GB") as err:
        step(tiny, LLAMA2_7B, "decode", kv_len=512, sockets=1)
    assert "\n" not in str(err.value)


def test_pipeline_is_fill_plus_the_slowest_stage_per_chunk():
    # n identical chunks through stages taking a, b, c seconds: a + b + c + (n - 1) * max(a, b, c)
    for a, b, c, n in [(1.0, 2.0, 0.5, 7), (3.0, 1.0, 1.0, 4), (0.2, 0.2, 0.9, 10)]:
        t, busy, _ = run_pipeline([{"x": a, "y": b, "z": c}] * n, {"x": None, "y": None, "z": None}, depth=2)
        assert t == pytest.approx(a + b + c + (n - 1) * max(a, b, c))
        assert busy == pytest.approx({"x": n * a, "y": n * b, "z": n * c, "launch": 0.0})
    # a launch is a kernel boundary: the pipeline drains, then the launch time passes, then it refills
    t, busy, _ = run_pipeline([{"x": 1.0, "y": 2.0}, {"launch": 0.5, "x": 1.0, "y": 2.0}], {"x": None, "y": None})
    assert t == pytest.approx((1 + 2) + 0.5 + (1 + 2)) and busy["launch"] == 0.5


def test_decode_step_obeys_its_tiers_bandwidth_and_reports_the_binding_tier():
    a = sn40l()
    r = step(a, LLAMA2_7B, "decode", kv_len=4096)
    hbm = a.bytes_per_s(a.tier("hbm").bandwidth)
    weights = 2 * 6.5e9 / 8  # about: q,k,v,o, FFN and LM head per socket, bf16
    assert r.seconds >= max(r.busy.values()) and r.seconds >= weights / hbm
    assert r.bound == "hbm" and r.placement.binding_tier == "hbm"
    big = step(sn40l(sockets=1), load_model("llama2-70b"), "decode", kv_len=4096, sockets=1)
    assert big.bound == "ddr" and big.placement.counts["layer_weights", "ddr"] > 0  # 137 GB cannot stay in 64 GiB


def test_fused_layers_launch_once_per_layer_and_never_lose_to_unfused():
    a = sn40l()
    for phase, kw in (("decode", {"kv_len": 4096}), ("prefill", {"seq": 4096})):
        fused, unfused = step(a, LLAMA2_7B, phase, **kw), step(a, LLAMA2_7B, phase, fused=False, **kw)
        assert fused.kernels == 32 + 1 and unfused.kernels == 32 * 15 + 2
        assert unfused.seconds > fused.seconds


def test_llama31_8b_on_16_sockets_is_at_or_below_the_hbm_roofline():
    cfg = load_model("llama3-8b")
    a = sn40l(sockets=16)
    r = step(a, cfg, "decode", kv_len=8192, sockets=16)
    per_socket = sum(r.placement.tier_seconds.values())  # bytes streamed per token / HBM bandwidth
    assert 1 / r.seconds <= 1 / per_socket + 1e-9
    assert 1042 < 1 / r.seconds  # the published 1042 tokens/s per user is below our roofline-bound figure


def test_switching_speedups_match_the_paper():
    sn = switch_seconds("sn40l", LLAMA2_7B)
    assert switch_seconds("dgx-a100", LLAMA2_7B) / sn == pytest.approx(31, rel=0.10)
    assert switch_seconds("dgx-h100", LLAMA2_7B) / sn == pytest.approx(15, rel=0.10)


def test_expert_capacity_and_spill_point():
    router_and_kv = expert_bytes(LLAMA2_7B) + 1e9
    for dgx in ("dgx-a100", "dgx-h100"):
        cap = coe_capacity(dgx, LLAMA2_7B, router_and_kv)
        assert 47 <= cap.in_hbm + 1 <= 50  # the first expert that does not fit spills to host memory
    sn = coe_capacity("sn40l", LLAMA2_7B, router_and_kv)
    # every expert lives in DDR: 8 x 1.5 TiB / 13.48 GB = 979; the paper says "up to 850" (the gap: README)
    assert sn.in_all_tiers == int(8 * 1.5 * 2**40 // expert_bytes(LLAMA2_7B)) == 979


def test_coe_stream_switches_only_on_a_miss_and_dgx_spills_past_its_hbm():
    routes = [0, 1, 0, 0, 2, 1]
    one_slot = coe_run("sn40l", LLAMA2_7B, 150, routes, hbm_slots=1, values=ASSUMED)
    assert one_slot.switches == 4  # expert 0 preloaded: 0 (hit) | 1 | 0 | 0 (hit) | 2 | 1
    assert one_slot.switch_seconds == pytest.approx(4 * switch_seconds("sn40l", LLAMA2_7B))
    dgx_values = {"network.latency_us": 1.0, "launch.software_us": 9.5}
    fits = coe_run("dgx-a100", LLAMA2_7B, 40, routes, values=dgx_values)
    assert fits.switches == 0  # 40 experts fit in the DGX's HBM: loaded before, never switched
    spills = coe_run("dgx-a100", LLAMA2_7B, 150, [100, 120, 100], values=dgx_values)
    assert spills.switches == 2 and spills.seconds > 2 * switch_seconds("dgx-a100", LLAMA2_7B)
    with pytest.raises(PlacementError, match="short by"):
        coe_run("dgx-a100", LLAMA2_7B, 400, routes, values=dgx_values)


def test_the_papers_fusion_bands_hold_together_for_one_set_of_the_unknowns():
    """SN-P's bands (fused/unfused: prefill 1.5-3x, decode 1-13x; hardware/software launch: prefill
    <= 1.1x, decode 1.4-8x) all hold, for four LLaMA models, with a 60 us software launch, the
    measured 1.2 us graph launch for hardware, and a 400 GB/s, 1 us network -- values SN-P does not
    give (the notebook sweeps them; most other settings break at least one band)."""
    a = sn40l(**{"launch.software_us": 60})
    for name in ("llama2-7b", "llama2-70b", "llama3-8b", "llama3-70b"):
        cfg = load_model(name)
        d = [step(a, cfg, "decode", kv_len=4096, **k).seconds for k in ({}, {"fused": False}, {"launch": "hardware"})]
        p = [step(a, cfg, "prefill", seq=4096, **k).seconds for k in ({}, {"fused": False}, {"launch": "hardware"})]
        assert 1 <= d[1] / d[0] <= 13 and 1.5 <= p[1] / p[0] <= 3, name
        assert 1.4 <= d[0] / d[2] <= 8 and p[0] / p[2] <= 1.1, name
    b = sn40l(**{"launch.software_us": 10})  # a 10 us launch is too cheap for the decode band
    assert step(b, LLAMA2_7B, "decode", kv_len=4096).seconds / step(b, LLAMA2_7B, "decode", kv_len=4096, launch="hardware").seconds < 1.4
