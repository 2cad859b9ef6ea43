"""PIM-GPT-like decoding on GDDR6-PIM channels, against the command-level DRAM engine and the paper's claims."""

from __future__ import annotations

from math import ceil

import pytest

from arch import ArchError
from arch.dram import load_dram
from arch.pim import load_pim_system, pim_with
from sim.pim import Vmm, decode_token, fit_lanes, plan_vmm, vmm_program, vmm_seconds
from workloads.zoo import load_model

GPTS = ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-small", "gpt3-medium", "gpt3-large", "gpt3-xl"]


@pytest.fixture(scope="module")
def system():
    return load_pim_system("pim-gpt")


@pytest.fixture(scope="module")
def tokens(system):
    memo: dict = {}
    return {m: decode_token(system, load_model(m), memo=memo) for m in GPTS}


def test_every_preset_value_has_a_source_and_unknown_lanes_stop_a_run():
    s = load_pim_system("pim-gpt")
    for key in ("dram", "channels", "asic.clock", "asic.lanes", "asic.op_cycles"):
        assert key in s.sources
    assert s.sources["asic.lanes"].startswith("fitted")
    unknown = s.model_copy(update={"asic": s.asic.model_copy(update={"lanes": None})})
    with pytest.raises(ArchError, match="asic.lanes is unknown"):
        decode_token(unknown, load_model("gpt2-small"))


def test_asic_width_is_fitted_to_one_published_share_and_the_other_claim_is_a_check(system):
    """lanes: the width at which GPT3-XL's non-VMM share is PIM-GPT's 1.16 %; then the paper's
    independent claim -- the ASIC at 100 MHz costs at most 1.2x -- must hold, and does not by construction."""
    cfg = load_model("gpt3-xl")
    assert fit_lanes(load_pim_system("pim-gpt"), cfg, 0.0116) == system.asic.lanes
    fast, slow = decode_token(system, cfg), decode_token(pim_with(system, clock_hz=1e8), cfg)
    assert fast.non_vmm_share == pytest.approx(0.0116, abs=0.0002)
    assert slow.seconds / fast.seconds <= 1.2


def test_layout_uses_every_bank_and_reads_every_weight_once():
    spec = load_dram("aim")
    banks = 16 * 8
    for vmm in (Vmm("fc1", 1600, 6400), Vmm("fc2", 6400, 1600), Vmm("qk", 64, 12 * 1024, gb_values=768), Vmm("lm", 768, 50257)):
        plan = plan_vmm(vmm, spec, 8)
        cols = ceil(vmm.k / 16)
        # MAC column reads over all banks and channels cover every weight exactly (plus only the padding of the last neurons)
        assert plan.macs * banks >= vmm.n * cols
        assert plan.macs == ceil(vmm.n / banks) * cols
        assert all(c <= spec.organization.columns for c in plan.columns)


def test_periodic_extension_matches_the_full_command_simulation():
    spec = load_dram("aim")
    for vmm in (Vmm("fc1", 1600, 6400), Vmm("lm", 1600, 50257), Vmm("av", 2048, 128, repeat=24)):
        plan = plan_vmm(vmm, spec, 8)
        extended = sum(vmm_seconds(plan, spec, period_rows=8))
        full = sum(vmm_seconds(plan, spec, period_rows=10**9))
        assert extended == pytest.approx(full, rel=0.01), vmm


def test_a_program_is_legal_for_the_engine_and_its_checker():
    from sim.dram.checker import check_trace
    from sim.dram.engine import Command, run_program

    spec = load_dram("aim")
    plan = plan_vmm(Vmm("fc1", 1600, 6400), spec, 8)
    run = run_program(spec, [Command(0, k, 0, 0, 0, 0, r, c) for k, r, c in vmm_program(plan, spec, 1)])
    assert check_trace(spec, run.commands) == []
    assert run.mac_columns == plan.rows * plan.columns[1] * 16  # every bank's unit read each column
    assert plan.row_hit_rate == pytest.approx(1 - 2 * plan.rows / plan.macs)


def test_row_hit_rate_is_at_least_95_percent_on_the_eight_models(tokens):
    for name, t in tokens.items():
        assert t.row_hit_rate >= 0.95, (name, t.row_hit_rate)


def test_token_parts_add_up_and_pim_time_is_at_least_the_bank_bandwidth_bound(system, tokens):
    spec = load_dram("aim")
    per_bank = 16 * 2 / 1e-9  # one 32-byte column per bank per ns (AiM's MACab rate)
    for name, t in tokens.items():
        cfg = load_model(name)
        weights = 2 * (cfg.layers * (4 * cfg.hidden**2 + 2 * cfg.hidden * cfg.ffn) + cfg.vocab * cfg.hidden)
        kv = 2 * cfg.layers * 2 * cfg.max_seq * cfg.hidden
        assert t.seconds == pytest.approx(t.pim_s + t.movement_s + t.asic_s)
        assert t.pim_s >= (weights + kv) / (system.channels * 16 * per_bank) * 0.95, name
    assert spec.organization.column_bytes == 32


def test_asic_clock_and_width_only_change_the_asic_part(system):
    cfg = load_model("gpt3-xl")
    fast, slow = decode_token(system, cfg), decode_token(pim_with(system, clock_hz=1e8), cfg)
    assert slow.pim_s == pytest.approx(fast.pim_s) and slow.movement_s == pytest.approx(fast.movement_s)
    assert slow.asic_s == pytest.approx(10 * fast.asic_s)
    assert slow.seconds > fast.seconds
    wide = decode_token(pim_with(system, lanes=4 * system.asic.lanes), cfg)
    assert wide.asic_s < fast.asic_s and wide.seconds < fast.seconds


def test_pim_beats_the_t4_baseline_on_every_model(tokens):
    from arch.gpu import load_gpu
    from sim.gpu import model_kernels, run_kernels

    t4 = load_gpu("t4")
    for name, t in tokens.items():
        cfg = load_model(name)
        gpu = run_kernels(model_kernels(t4, cfg, "decode", kv_len=cfg.max_seq - 1), t4).seconds
        assert gpu / t.seconds > 5, name  # ours: 9-15x; the paper's 41-137x (the gap: README)


def test_a_model_too_big_for_the_banks_is_one_clear_line():
    small = load_pim_system("pim-gpt").model_copy(update={"channels": 1})
    with pytest.raises(ArchError, match=r"gpt2-xl with 1023 cached tokens needs \d+ rows in every bank of 'pim-gpt' "
                                        r"\(1 x 'aim' channels\) but a bank has 16384; short by"):
        decode_token(small, load_model("gpt2-xl"))
    with pytest.raises(ArchError, match="'gddr6' has no pim block"):
        plan_vmm(Vmm("fc1", 1024, 4096), load_dram("gddr6"), 8)


@pytest.mark.parametrize("name", ["hbm-pim", "aim"])
def test_the_other_pim_presets_decode_too(name):
    """HBM-PIM (a 16-lane PCU per 2 banks, pseudo channels) and a 32-channel AiM system run the same mapping."""
    s = load_pim_system(name)
    t = decode_token(s, load_model("gpt2-medium"))
    assert t.seconds == pytest.approx(t.pim_s + t.movement_s + t.asic_s) and t.row_hit_rate > 0.9
    pim = decode_token("pim-gpt", load_model("gpt2-medium"))
    if name == "aim":  # 4x the channels of the same device: about 4x less PIM time
        assert 3 < pim.pim_s / t.pim_s <= 4.05
