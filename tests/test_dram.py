"""DRAM at command level: presets, the engine's traces against the independent checker, the
checker's own teeth, bandwidth bounds, the PIM micro-benchmarks, energy and preset errors."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arch import ArchError
from arch.dram import DramSpec, dram_with_values, idd_energies, list_dram, load_dram
from sim.dram import (AddressMap, Command, DramError, Request, check_trace, command_energy, run_program,
                      run_requests)

NAMES = [n for n, _ in list_dram()]
SPECS = {n: load_dram(n) for n in NAMES}
FAR = 2000  # a lower bound far past every latency except refresh, to isolate one constraint


def rule_names(lines: list[str]) -> set[str]:
    return {line.split(":")[0] for line in lines}


# ---- presets ------------------------------------------------------------------------------

def test_presets_load_and_every_value_has_a_source():
    assert set(NAMES) == {"hbm2", "hbm3", "gddr6", "ddr4-3200", "ddr5-4800", "ddr5-6400", "aim", "hbm-pim"}
    for name, spec in SPECS.items():
        data = spec.model_dump(exclude_unset=True)
        leaves = []
        for block in ("organization", "timing", "energy", "pim"):
            stack = [(block, data.get(block))]
            while stack:
                path, node = stack.pop()
                if isinstance(node, dict):
                    stack += [(f"{path}.{k}", v) for k, v in node.items()]
                elif node is not None or path in spec.sources or block != "pim":
                    leaves.append((path, node))
        missing = [p for p, _ in leaves if p not in spec.sources]
        assert not missing, (name, missing)
        for path, value in leaves:  # a null is marked unknown or not applicable, never silent
            if value is None:
                assert spec.sources[path].startswith(("unknown", "n/a")), (name, path, spec.sources[path])
        t = spec.timing
        if spec.sources["timing.nRTW"].startswith("derived"):  # the standard formula, as the source says
            assert t.nRTW == t.nCL + t.nBL + 2 - t.nCWL, name


@pytest.mark.parametrize("name, gbps", [("hbm2", 32.0), ("hbm3", 51.2), ("gddr6", 28.0), ("ddr4-3200", 25.6),
                                        ("ddr5-4800", 19.2), ("ddr5-6400", 25.6), ("aim", 32.0)])
def test_peak_bandwidth_per_channel_is_width_times_rate(name, gbps):
    assert SPECS[name].peak_bandwidth == pytest.approx(gbps * 1e9)


def test_unknown_values_are_one_line_errors_naming_their_source():
    with pytest.raises(ArchError, match=r"'hbm3': energy.rd_pj is unknown \(unknown: no HBM3 currents"):
        SPECS["hbm3"].need("energy.rd_pj")
    with pytest.raises(ArchError, match=r"timing.nRFCpb is unknown \(n/a: DDR4 has no per-bank refresh\)"):
        run_requests("ddr4-3200", [0], refresh="per-bank")


# ---- (a) every trace the engine makes is legal --------------------------------------------

def _address(spec: DramSpec, amap: AddressMap, draw: tuple[int, int, int, int, int]) -> int:
    org = spec.organization
    pch, bg, bank, row, col = draw
    return amap.encode(pch=pch % org.pseudo_channels, bankgroup=bg % org.bankgroups, bank=bank % org.banks_per_group,
                       row=row % 8, col=col % org.columns)  # few rows: hits, misses and conflicts all occur


_request = st.tuples(st.tuples(*[st.integers(0, 63)] * 5), st.booleans(),  # half back to back, some idle gaps
                     st.one_of(st.just(0), st.just(0), st.integers(0, 40), st.integers(0, 2500)))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(reqs=st.lists(_request, min_size=30, max_size=150), closed=st.booleans())
def test_random_request_streams_give_legal_traces(name, reqs, closed):
    spec = SPECS[name]
    amap = AddressMap(spec)
    arrival, stream = 0, []
    scale = spec.timing.nREFI / 2500  # gaps up to ~1 tREFI, so refreshes fall among the requests
    for draw, write, gap in reqs:
        arrival += int(gap * scale)
        stream.append(Request(_address(spec, amap, draw), write, arrival))
    run = run_requests(spec, stream, page_policy="closed" if closed else "open", refresh=True)
    assert all(isinstance(c.cycle, int) for c in run.commands)
    assert check_trace(spec, run.commands) == []
    assert run.row_hits + run.row_misses + run.row_conflicts == len(stream)
    assert run.count("RD") + run.count("WR") == len(stream)


def _adversarial(spec: DramSpec, pattern: str, n: int, rng: random.Random) -> list[Request]:
    """``n`` requests that press on one family of constraints."""
    org, amap = spec.organization, AddressMap(spec)
    if pattern == "same-bank-rows":  # tRC, tRAS, tRP, tRTP, tWR: a new row nearly every time
        return [Request(amap.encode(row=rng.randrange(org.rows), col=rng.randrange(org.columns)), rng.random() < 0.3)
                for _ in range(n)]
    if pattern == "one-bank-group":  # tCCD_L, tRRD_L, tWTR_L
        return [Request(amap.encode(bank=rng.randrange(org.banks_per_group), row=rng.randrange(3),
                                    col=rng.randrange(org.columns)), rng.random() < 0.5) for _ in range(n)]
    if pattern == "read-write":  # tRTW, tWTR_S/L, data-bus turnaround
        return [Request(amap.encode(pch=i % org.pseudo_channels, bankgroup=rng.randrange(org.bankgroups),
                                    col=rng.randrange(org.columns)), i % 2 == 1) for i in range(n)]
    assert pattern == "act-storm"  # tFAW, tRRD_S/L: every request a new row, banks round robin
    return [Request(amap.encode(bankgroup=i % org.bankgroups, bank=(i // org.bankgroups) % org.banks_per_group,
                                row=rng.randrange(org.rows))) for i in range(n)]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("pattern", ["same-bank-rows", "one-bank-group", "read-write", "act-storm"])
def test_adversarial_streams_give_legal_traces(name, pattern):
    spec = SPECS[name]
    t, org = spec.timing, spec.organization
    for policy in ("open", "closed"):
        n = 200
        while True:  # long enough to cross a few refreshes
            run = run_requests(spec, _adversarial(spec, pattern, n, random.Random(7)), page_policy=policy, refresh=True)
            if run.cycles >= 2.5 * t.nREFI:
                break
            n = math.ceil(n * 2.7 * t.nREFI / run.cycles)
        assert check_trace(spec, run.commands) == [], (policy, check_trace(spec, run.commands)[:5])
        per_rank = 1 if t.nRFCpb is None else org.banks_per_rank  # REF per tREFI, or REFpb per bank
        assert run.count("REF") + run.count("REFpb") >= 2 * per_rank * org.pseudo_channels * org.ranks


@pytest.mark.parametrize("name", ["ddr4-3200", "hbm2"])
def test_two_ranks_share_the_data_bus_with_a_switch_gap(name):
    spec = dram_with_values(SPECS[name], {"organization.ranks": 2, "timing.nRTRS": 2})
    amap = AddressMap(spec)
    rng = random.Random(3)
    stream = [Request(amap.encode(rank=i % 2, bankgroup=rng.randrange(4), row=rng.randrange(3),
                                  col=rng.randrange(16)), rng.random() < 0.3) for i in range(3000)]
    run = run_requests(spec, stream, refresh=True)
    assert check_trace(spec, run.commands) == []
    assert {c.rank for c in run.commands} == {0, 1}
    program = [Command(0, "ACT", 0, 0, 0, 0, 1), Command(0, "ACT", 0, 1, 0, 0, 1), Command(FAR, "RD", 0, 0, 0, 0),
               Command(0, "RD", 0, 1, 0, 0)]
    trace = list(run_program(spec, program, refresh=False).commands)
    assert trace[3].cycle - trace[2].cycle == spec.timing.nBL + 2  # the other rank's burst waits nRTRS
    assert check_trace(spec, trace) == []
    trace[3] = Command(trace[3].cycle - 1, "RD", 0, 1, 0, 0, trace[3].row)
    assert "data bus" in rule_names(check_trace(spec, trace))


# ---- (b) the checker catches every kind of violation --------------------------------------

def cmd(kind, bg=0, bank=0, row=None, col=None, pch=0, at=0):
    return Command(at, kind, pch, 0, bg, bank, row, col)


def _cases(spec: DramSpec) -> list[tuple[str, list[Command], int]]:
    """(rule, program, index of the command that the rule places): the engine puts that command
    exactly at the rule's bound, so one cycle earlier must break it."""
    t = spec.cycles()
    cases = [
        ("tRCD", [cmd("ACT", row=1), cmd("RD")], 1),
        ("tRCD", [cmd("ACT", row=1), cmd("WR")], 1),
        ("tRAS", [cmd("ACT", row=1), cmd("PRE")], 1),
        ("tRP", [cmd("ACT", row=1), cmd("PRE", at=FAR), cmd("ACT", row=2)], 2),
        ("tRTP", [cmd("ACT", row=1), cmd("RD", at=FAR), cmd("PRE")], 2),
        ("tWR", [cmd("ACT", row=1), cmd("WR", at=FAR), cmd("PRE")], 2),
        ("tCCD_L", [cmd("ACT", row=1), cmd("ACT", 0, 1, row=1), cmd("RD", at=FAR), cmd("RD", 0, 1)], 3),
        ("tCCD_S", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1), cmd("RD", at=FAR), cmd("RD", 1, 0)], 3),
        ("tCCD_L", [cmd("ACT", row=1), cmd("ACT", 0, 1, row=1), cmd("WR", at=FAR), cmd("WR", 0, 1)], 3),
        ("tCCD_S", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1), cmd("WR", at=FAR), cmd("WR", 1, 0)], 3),
        ("tWTR_L", [cmd("ACT", row=1), cmd("WR", at=FAR), cmd("RD")], 2),
        ("tWTR_S", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1), cmd("WR", at=FAR), cmd("RD", 1, 0)], 3),
        ("tRTW", [cmd("ACT", row=1), cmd("RD", at=FAR), cmd("WR")], 2),
        ("tRRD_L", [cmd("ACT", row=1), cmd("ACT", 0, 1, row=1)], 1),
        ("tRRD_S", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1)], 1),
        ("tRFC", [cmd("REF"), cmd("ACT", row=1)], 1),
        ("command bus", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1, at=FAR), cmd("PRE")], 2),
    ]
    if t.CCDS <= t.BL:  # back-to-back reads are as close as their bursts
        cases.append(("data bus", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1), cmd("RD", at=FAR), cmd("RD", 1, 0)], 3))
    if t.RC >= t.RAS + t.RP:  # otherwise tRAS + tRP already imply tRC and it is never the bound
        cases.append(("tRC", [cmd("ACT", row=1), cmd("PRE"), cmd("ACT", row=2)], 2))
    if t.FAW >= 4 * t.RRDS:  # otherwise four tRRD_S already span tFAW
        cases.append(("tFAW", [cmd("ACT", g % 4, g // 4, row=1) for g in range(5)], 4))
    if t.PPD:
        cases.append(("tPPD", [cmd("ACT", row=1), cmd("ACT", 1, 0, row=1), cmd("PRE", at=FAR), cmd("PRE", 1, 0)], 3))
    if t.RFCpb is not None:
        cases += [("tRFCpb", [cmd("REFpb"), cmd("ACT", row=1)], 1),
                  ("tRREFD", [cmd("REFpb"), cmd("ACT", 1, 0, row=1)], 1),
                  ("tRRD_S", [cmd("ACT", row=1), cmd("REFpb", 1, 0)], 1)]
    if spec.pim is not None:
        cases += [("tRCDMAC", [cmd("ACTab", row=1), cmd("MACab", col=0)], 1),
                  ("tCCDAB", [cmd("ACTab", row=1), cmd("MACab", col=0), cmd("MACab", col=1)], 2),
                  ("tGB", [cmd("ACTab", row=1), cmd("WRgb", at=FAR), cmd("MACab", col=0)], 2),
                  ("tRCDMAC", [cmd("ACT", 1, 1, row=1), cmd("MACsb", 1, 1, col=0)], 1),
                  ("data bus", [cmd("ACT", row=1), cmd("RD", at=FAR), cmd("RDmac", at=FAR + t.CL - t.CLREG)], 2)]
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_moving_a_bound_command_one_cycle_earlier_is_named(name):
    spec = SPECS[name]
    for rule, program, i in _cases(spec):
        trace = list(run_program(spec, program, refresh=False).commands)
        assert check_trace(spec, trace) == [], rule
        c = trace[i]
        trace[i] = Command(c.cycle - 1, c.kind, c.pch, c.rank, c.bankgroup, c.bank, c.row, c.col)
        assert rule in rule_names(check_trace(spec, trace)), (rule, check_trace(spec, trace))


@pytest.mark.parametrize("name", NAMES)
def test_every_program_command_sits_at_its_earliest_legal_cycle(name):
    """Replay a controller's command order as a program: each command not tied to its
    predecessor's cycle breaks some rule when moved one cycle earlier (the engine wastes no
    cycle, and the checker knows every rule the engine obeys)."""
    spec = SPECS[name]
    rng, amap, org = random.Random(13), AddressMap(spec), spec.organization
    stream = [Request(amap.encode(pch=rng.randrange(org.pseudo_channels), bankgroup=rng.randrange(org.bankgroups),
                                  bank=rng.randrange(2), row=rng.randrange(3), col=rng.randrange(org.columns)),
                      rng.random() < 0.4, arrival=i * spec.timing.nREFI // 40) for i in range(60)]
    order = run_requests(spec, stream, refresh=True).commands
    program = [Command(0, c.kind, c.pch, c.rank, c.bankgroup, c.bank, c.row, c.col) for c in order]
    trace = list(run_program(spec, program, refresh=False).commands)
    assert check_trace(spec, trace) == []
    moved = 0
    for i in range(1, len(trace)):
        c = trace[i]
        if c.cycle == trace[i - 1].cycle:
            continue  # in order: it may not go before the command ahead of it
        early = trace[:i] + [Command(c.cycle - 1, c.kind, c.pch, c.rank, c.bankgroup, c.bank, c.row, c.col)] + trace[i + 1:]
        assert check_trace(spec, early), (i, c)
        moved += 1
    assert moved > len(trace) // 2


@pytest.mark.parametrize("name", NAMES)
def test_checker_counts_activates_in_a_faw_window_and_replays_bank_states(name):
    spec = SPECS[name]
    t = spec.timing
    storm = [Command(i * t.nRRDS, "ACT", 0, 0, i % 4, i // 4, 1) for i in range(5)]
    storm[4] = Command(t.nFAW - 1, "ACT", 0, 0, 0, 1, 1)
    if t.nFAW - 1 > 3 * t.nRRDS:
        assert "tFAW" in rule_names(check_trace(spec, storm))
    far = 5 * FAR
    assert "state" in rule_names(check_trace(spec, [Command(0, "RD", row=1)]))  # RD to a closed bank
    assert "state" in rule_names(check_trace(spec, [Command(0, "ACT", row=1), Command(far, "ACT", row=2)]))
    assert "state" in rule_names(check_trace(spec, [Command(0, "ACT", row=1), Command(far, "REF")]))
    assert "state" in rule_names(check_trace(spec, [Command(0, "ACT", row=1), Command(far, "RD", row=2)]))
    if spec.pim is None:
        assert "command" in rule_names(check_trace(spec, [Command(0, "WRgb")]))
    else:
        assert "state" in rule_names(check_trace(spec, [Command(0, "ACT", row=1), Command(far, "MACab")]))


@pytest.mark.parametrize("name", ["ddr4-3200", "hbm2"])
def test_checker_wants_every_bank_refreshed_within_nine_trefi(name):
    spec = SPECS[name]
    stream = [Request(64 * i, arrival=i * spec.timing.nREFI // 2) for i in range(24)]  # 12 tREFI long
    assert "tREFI" in rule_names(check_trace(spec, run_requests(spec, stream, refresh=False).commands,
                                             require_refresh=True))
    assert check_trace(spec, run_requests(spec, stream, refresh=True).commands, require_refresh=True) == []


def test_illegal_programs_are_refused():
    with pytest.raises(DramError, match=r"program\[0\] RD .*closed"):
        run_program("hbm2", [Command(0, "RD")])
    with pytest.raises(DramError, match="needs PIM units"):
        run_program("hbm2", [Command(0, "ACTab", row=0)])
    with pytest.raises(DramError, match=r"program\[1\] MACab .*every bank"):
        run_program("aim", [Command(0, "ACT", row=0), Command(0, "MACab")])


# ---- (c) sequential reads reach >= 90 % of the pins' peak, refresh on ------------------------

SEQUENTIAL: dict[str, float] = {}


@pytest.mark.parametrize("name", NAMES)
def test_sequential_reads_reach_90_percent_of_peak(name):
    spec = SPECS[name]
    org, t = spec.organization, spec.timing
    n = math.ceil(3 * t.nREFI * org.pseudo_channels / t.nBL)  # three refresh intervals of streaming
    run = run_requests(spec, [Request(i * org.column_bytes) for i in range(n)], refresh=True)
    assert run.count("REF") + run.count("REFpb") > 0
    assert check_trace(spec, run.commands) == []
    share = run.bandwidth / spec.peak_bandwidth
    SEQUENTIAL[name] = share
    print(f"{name}: sequential reads {share:.1%} of {spec.peak_bandwidth / 1e9:.1f} GB/s")
    assert 0.90 <= share <= 1.01


# ---- (d) random accesses are bounded by tRC (one bank) and tFAW / tRRD (one rank) -----------

@pytest.mark.parametrize("name", NAMES)
def test_random_reads_to_one_bank_take_trc_each(name):
    spec = SPECS[name]
    t, org = spec.cycles(), spec.organization
    rng, amap, rows, prev = random.Random(5), AddressMap(spec), [], None
    while len(rows) < 80:
        row = rng.randrange(org.rows)
        if row != prev:
            rows.append(row)
            prev = row
    run = run_requests(spec, [Request(amap.encode(row=r, col=rng.randrange(org.columns))) for r in rows], refresh=False)
    acts = [c.cycle for c in run.commands if c.kind == "ACT"]
    per_access = (acts[-1] - acts[0]) / (len(acts) - 1)
    assert per_access >= t.RC  # never faster than tRC
    # one row cycle: ACT, RD after tRCD, PRE after tRAS and tRTP, next ACT after tRP, and tRC
    assert per_access == max(t.RC, t.RAS + t.RP, t.RCDRD + t.RTP + t.RP)
    assert run.row_conflicts == len(rows) - 1


@pytest.mark.parametrize("name", NAMES)
def test_activate_bound_reads_across_a_rank_follow_tfaw_and_trrd(name):
    spec = SPECS[name]
    t, org = spec.cycles(), spec.organization
    amap, rng, stream, last = AddressMap(spec), random.Random(9), [], {}
    for i in range(400):
        bg, bank = i % org.bankgroups, (i // org.bankgroups) % org.banks_per_group
        row = rng.randrange(org.rows)
        while row == last.get((bg, bank)):
            row = rng.randrange(org.rows)
        last[(bg, bank)] = row
        stream.append(Request(amap.encode(bankgroup=bg, bank=bank, row=row)))
    run = run_requests(spec, stream, page_policy="closed", refresh=False)
    acts = [c.cycle for c in run.commands if c.kind == "ACT"]
    per_act = (acts[-1] - acts[0]) / (len(acts) - 1)
    bound = max(t.RRDS, t.FAW / 4, t.RRDL / org.bankgroups, t.RC / org.banks_per_rank)
    assert t.FAW / 4 >= t.RC / org.banks_per_rank  # the rank's activate rate, not the banks, is the limit
    assert 0.98 * bound <= per_act <= 1.05 * bound, (per_act, bound)


# ---- (e) AiM: MACab streams one 32 B column per bank per ns ----------------------------------

def test_aim_macab_reads_a_row_in_all_banks_at_16x_the_pins():
    spec = SPECS["aim"]
    org = spec.organization
    program = [Command(0, "WRgb"), Command(0, "ACTab", row=3)]
    program += [Command(0, "MACab", col=c) for c in range(org.columns)] + [Command(0, "RDmac"), Command(0, "PREab")]
    run = run_program(spec, program)
    assert check_trace(spec, run.commands) == []
    macs = [c.cycle for c in run.commands if c.kind == "MACab"]
    assert run.mac_columns == org.columns * org.banks_per_rank
    stream_s = (macs[-1] - macs[0] + spec.pim.timing.nCCDAB) * spec.tck_s
    per_bank_columns_per_ns = org.columns / stream_s / 1e9
    internal = run.mac_columns * org.column_bytes / stream_s
    ratio = internal / spec.peak_bandwidth
    print(f"aim: {per_bank_columns_per_ns:.3f} columns/bank/ns, internal {internal / 1e9:.0f} GB/s, {ratio:.2f}x the pins")
    assert per_bank_columns_per_ns == pytest.approx(1.0, rel=0.01)
    assert ratio == pytest.approx(16.0, rel=0.01)
    # many rows: refreshes fall inside the kernel; the rows are reopened and the trace stays legal
    rows = 40
    program = [Command(0, "WRgb")]
    for row in range(rows):
        program += [Command(0, "ACTab", row=row)] + [Command(0, "MACab", col=c) for c in range(org.columns)]
        program += [Command(0, "PREab")]
    run = run_program(spec, program)
    assert check_trace(spec, run.commands, require_refresh=True) == []
    assert run.count("REF") >= 2 and rows <= run.count("ACTab") <= rows + run.count("REF")
    sustained = run.mac_columns * org.column_bytes / run.seconds
    print(f"aim: {rows} rows with ACTab/PREab and refresh: {sustained / spec.peak_bandwidth:.1f}x the pins")
    assert 1 < sustained / spec.peak_bandwidth < ratio


# ---- (f) HBM-PIM: 128 PCUs x 16 lanes x 2 x 300 MHz ~ 1.2 TFLOPS per stack -------------------

def test_hbm_pim_macab_stream_reaches_the_pcu_peak():
    spec = SPECS["hbm-pim"]
    org, pim = spec.organization, spec.pim
    units = spec.pim_units_per_channel * org.channels
    assert units == 128
    assert spec.pim_peak_flops == pytest.approx(units * pim.lanes * 2 * 300e6)
    assert 1.15e12 <= spec.pim_peak_flops <= 1.25e12
    program = []
    for row in range(4):
        program += [Command(0, "ACTab", pch=p, row=row) for p in range(org.pseudo_channels)]
        program += [Command(0, "MACab", pch=p, col=c) for c in range(org.columns) for p in range(org.pseudo_channels)]
        program += [Command(0, "PREab", pch=p) for p in range(org.pseudo_channels)]
    run = run_program(spec, program)
    assert check_trace(spec, run.commands) == []
    flops_per_mac = spec.pim_units_per_channel // org.pseudo_channels * pim.lanes * 2
    macs = [c.cycle for c in run.commands if c.kind == "MACab" and c.pch == 0][: org.columns]  # one row, one pch
    steady = org.pseudo_channels * org.channels * flops_per_mac / ((macs[-1] - macs[0]) / (len(macs) - 1) * spec.tck_s)
    sustained = run.mac_columns * pim.lanes * 2 * org.channels / run.seconds
    print(f"hbm-pim: MACab stream {steady / 1e12:.3f} TFLOPS per stack (peak {spec.pim_peak_flops / 1e12:.3f}), "
          f"{sustained / 1e12:.3f} with row switches")
    assert steady == pytest.approx(spec.pim_peak_flops, rel=0.01)
    assert sustained < steady


# ---- (g) energy adds up from command counts ----------------------------------------------

REFERENCE_IDD = {  # shared/reference/dram_timing_blocks.yaml (DRAMsim3 configs) and the block's own timing
    "hbm2": dict(vdd=1.2, idd0=65, idd2n=40, idd3n=55, idd4r=390, idd4w=500, idd5ab=250, tck_ns=1.0, n_ras=34,
                 n_rp=14, n_rfc=260, burst_cycles=2, devices=1, burst_share=0.5),
    "ddr4-3200": dict(vdd=1.2, idd0=57, idd2n=37, idd3n=52, idd4r=168, idd4w=150, idd5ab=250, tck_ns=0.63, n_ras=52,
                      n_rp=22, n_rfc=560, burst_cycles=4, devices=8),
    "gddr6": dict(vdd=1.35, idd0=71, idd2n=60, idd3n=61, idd4r=248, idd4w=231, idd5ab=286, tck_ns=0.66, n_ras=54,
                  n_rp=24, n_rfc=126, burst_cycles=2, devices=1),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_IDD))
def test_energy_adds_up_from_command_counts(name):
    spec = SPECS[name]
    e = spec.energy
    expected = idd_energies(**REFERENCE_IDD[name])
    for key, value in expected.items():
        assert getattr(e, key) == pytest.approx(value, abs=0.06), key
    rng, amap = random.Random(11), AddressMap(spec)
    stream = [Request(amap.encode(pch=rng.randrange(spec.organization.pseudo_channels), bankgroup=rng.randrange(4),
                                  row=rng.randrange(4), col=rng.randrange(8)), rng.random() < 0.4) for _ in range(3000)]
    run = run_requests(spec, stream, refresh=True)
    parts = run.energy_breakdown_pj
    assert parts["ACT"] == pytest.approx(run.count("ACT") * e.act_pre_pj)
    assert parts["RD"] == pytest.approx(run.count("RD") * e.rd_pj)
    assert parts["WR"] == pytest.approx(run.count("WR") * e.wr_pj)
    refresh = "REF" if e.refpb_pj is None or spec.timing.nRFCpb is None else "REFpb"
    assert run.count(refresh) > 0
    assert parts[refresh] == pytest.approx(run.count(refresh) * getattr(e, "ref_pj" if refresh == "REF" else "refpb_pj"))
    tck_ns = spec.timing.tCK_ps / 1000
    assert e.pre_standby_mw * run.cycles * tck_ns <= parts["background"] <= e.act_standby_mw * run.cycles * tck_ns
    assert run.energy_pj == pytest.approx(sum(parts.values()))
    assert run.energy_unknown == ()


def test_unknown_energies_leave_the_total_unknown_and_say_which():
    run = run_requests("ddr5-4800", [0, 64, 4096 * 64])
    assert run.energy_pj is None
    assert set(run.energy_unknown) == {"ACT", "RD", "background"}
    total, parts, unknown = command_energy(SPECS["aim"], [Command(0, "ACTab", row=0)], 100)
    assert total is None and "ACT" in unknown


# ---- (h) bad preset YAML -------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (("  nCL: 14\n", "  nCL: fast\n"), r"timing\.nCL: must be a valid integer"),
    (("  nRCDWR: 12\n", "  nRCDWRR: 12\n"), r"timing\.nRCDWRR: unknown key 'nRCDWRR', did you mean 'nRCDWR'\?"),
    (("  column_bytes: 32\n", "  column_bytes: 64\n"),
     r"organization\.column_bytes: column_bytes 64 does not match the burst"),
])
def test_bad_preset_yaml_is_a_one_line_error_with_file_and_line(tmp_path, change, message):
    from importlib import resources

    text = resources.files("arch").joinpath("dram", "hbm2.yaml").read_text(encoding="utf-8")
    assert change[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(change[0], change[1]), encoding="utf-8")
    line = text.splitlines().index(change[0].rstrip("\n")) + 1
    with pytest.raises(ArchError) as info:
        load_dram(bad)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{bad}:")
    assert f":{line}:" in msg
    assert re.search(message, msg), msg


def test_unknown_preset_names_the_available_ones():
    with pytest.raises(ArchError, match="unknown DRAM preset 'hbm9'; available: aim, ddr4-3200"):
        load_dram("hbm9")


# ---- address mapping ---------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(NAMES), fields=st.tuples(*[st.integers(0, 1 << 20)] * 5))
def test_address_map_round_trips(name, fields):
    spec = SPECS[name]
    org = spec.organization
    amap = AddressMap(spec, "RoBaBgCoPcCh")
    pch, bg, bank, row, col = fields
    where = dict(pch=pch % org.pseudo_channels, bankgroup=bg % org.bankgroups, bank=bank % org.banks_per_group,
                 row=row % org.rows, col=col % org.columns)
    loc = amap.decode(amap.encode(**where))
    assert (loc.pch, loc.bankgroup, loc.bank, loc.row, loc.col) == tuple(where.values())
    with pytest.raises(DramError, match="lacks"):
        AddressMap(spec, "RoCo")
