"""PIM-GPT-like decoding: every matrix-vector product in the DRAM banks, the rest on a host ASIC.

Mapping (after PIM-GPT's description, shared/reference/pim_sn40l.md A.3):

- a VMM's output neurons are spread over every bank of every channel, so all MAC units work at
  once; a neuron's weights lie along a DRAM row, and short neurons are packed side by side until
  the row is full (attention heads concatenated); a neuron longer than a row is split into row
  segments whose partial sums the ASIC adds;
- K is stored row-major and V column-major, so q·Kᵀ and p·V are both row-streaming VMMs (rows
  for the new token's K and V are reserved ahead); p·V runs a head per channel, since each
  channel's global buffer holds one head's probabilities;
- per segment, a channel writes the input chunk into its global buffer (WRgb bursts), then for
  each row: ACTab (the row in all banks), MACab per used column, PREab; then reads the results
  (RDmac bursts). Channels are identical, so one channel's command program is simulated and its
  time is the VMM's.

The command programs run in the command-level DRAM engine (sim.dram); a VMM with many rows is
timed by simulating a prefix of rows and its double and extending the per-row time linearly
(the program is periodic in rows), which a test compares with the full simulation. The ASIC's
work (LayerNorm, softmax, GELU, residuals, partial sums) takes op cycles ÷ lanes ÷ clock, between
the VMMs that produce and consume its vectors (each step waits for the one before: batch 1 has
nothing to overlap it with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from arch.pim import PimSystem, load_pim_system

PERIOD_ROWS = 64  # rows simulated before extending a VMM's program by its per-row period


@dataclass(frozen=True)
class Vmm:
    """y[n] = Σ_k x[k] W[k, n] on the PIM channels: ``k`` inputs, ``n`` outputs, 2-byte values,
    done ``repeat`` times (once per head, for p·V); ``gb_values``: inputs the global buffer needs
    (default ``k``; all heads' queries for the head-packed q·Kᵀ); ``per_channel``: the instances
    are spread over the channels, one per channel at a time, each on that channel's banks."""

    name: str
    k: int
    n: int
    repeat: int = 1
    gb_values: int | None = None
    per_channel: bool = False  # each channel (its own global buffer) runs its own instance: p·V, head by head


@dataclass(frozen=True)
class VmmPlan:
    """How a VMM lies in the banks of one channel and the commands it takes there.

    The work is ``segments`` passes (a neuron longer than a row is cut into row-long segments);
    each pass writes its input chunk to the global buffer, opens ``rows`` rows (ACTab: the row in
    every bank) and issues ``columns[i]`` MACab per open row in pass i (each MACab: every PIM unit
    reads one column; a unit serving ``banks_per_unit`` banks reads them in turn), then reads the
    pass's results out."""

    vmm: Vmm
    neurons_per_row: int
    rows: int  # ACTab per pass
    columns: tuple[int, ...]  # MACab per open row, per pass
    gb_writes: tuple[int, ...]  # WRgb bursts per pass
    result_reads: int  # RDmac bursts per pass
    banks_per_unit: int = 1

    @property
    def segments(self) -> int:
        return len(self.columns)

    @property
    def acts(self) -> int:
        return self.rows * self.segments

    @property
    def macs(self) -> int:
        return self.rows * sum(self.columns)

    @property
    def row_hit_rate(self) -> float:
        """Column reads that find their row open: all but the first after each activation, per bank."""
        return 1.0 - self.acts * self.banks_per_unit / self.macs if self.macs else 1.0


@dataclass(frozen=True)
class TokenResult:
    """One decoded token: latency, its parts, row hits, and per-VMM detail."""

    model: str
    system: str
    seconds: float
    pim_s: float  # MAC command streams (ACT, MAC, PRE) on the channels
    movement_s: float  # input writes to the global buffers and result reads, over the channel buses
    asic_s: float  # LayerNorm, softmax, GELU, residuals and partial sums on the ASIC
    row_hit_rate: float
    vmms: tuple = field(default=(), compare=False)

    @property
    def non_vmm_share(self) -> float:
        return self.asic_s / self.seconds


def plan_vmm(vmm: Vmm, spec, channels: int) -> VmmPlan:
    """The layout of ``vmm`` over ``channels`` channels of DRAM-PIM device ``spec`` (see the module
    docstring). Pseudo channels work as separate channels; one of them is simulated."""
    org = spec.organization
    if spec.pim is None:
        from arch import ArchError

        raise ArchError(f"DRAM preset '{spec.name}' has no pim block: it cannot run VMMs in its banks")
    bpu = spec.pim.banks_per_unit
    units = org.bankgroups * org.banks_per_group * org.ranks // bpu  # per pseudo channel
    col_vals = org.column_bytes // 2
    per_unit = ceil(vmm.n / (channels * org.pseudo_channels * units))
    k_cols = ceil(vmm.k / col_vals)
    if k_cols <= org.columns:  # short neurons: pack them along the rows of the unit's banks
        packed = org.columns // k_cols
        rows = ceil(per_unit / (packed * bpu))
        columns = (min(per_unit, packed * bpu) * k_cols,)
        writes = (ceil((vmm.gb_values or vmm.k) * 2 / org.column_bytes),)
    else:  # long neurons: one bank row per neuron per pass, a row-long segment of it
        packed, rows = 1, ceil(per_unit / bpu)
        columns = tuple(min(per_unit, bpu) * min(org.columns, k_cols - s) for s in range(0, k_cols, org.columns))
        writes = tuple(ceil(min(org.columns, k_cols - s) * col_vals * 2 / org.column_bytes)
                       for s in range(0, k_cols, org.columns))
    results = ceil(units * per_unit * 2 / org.column_bytes)
    return VmmPlan(vmm, packed, rows, columns, writes, results, bpu)


def vmm_program(plan: VmmPlan, spec, segment: int = 0, rows: int | None = None) -> list[tuple]:
    """One channel's commands for pass ``segment`` of ``plan`` (its first ``rows`` rows if given):
    (kind, row, column) tuples for sim.dram.engine.run_program."""
    org = spec.organization
    prog: list[tuple] = [("WRgb", 0, c % org.columns) for c in range(plan.gb_writes[segment])]
    for r in range(plan.rows if rows is None else min(rows, plan.rows)):
        prog.append(("ACTab", r % org.rows, 0))
        prog += [("MACab", r % org.rows, c) for c in range(plan.columns[segment])]
        prog.append(("PREab", r % org.rows, 0))
    prog += [("RDmac", 0, c % org.columns) for c in range(plan.result_reads)]
    return prog


def gpt_work(cfg, kv_len: int) -> tuple[list[tuple], list[tuple]]:
    """(one layer's work, the final work) of a GPT decoder at batch 1 with ``kv_len`` cached tokens:
    ("vmm", Vmm) and ("asic", name, what) steps, in order."""
    d, heads, hd, ffn, keys = cfg.hidden, cfg.heads, cfg.head_dim, cfg.ffn, kv_len + 1
    layer = [
        ("asic", "layernorm1", ("layernorm", d)),
        ("vmm", Vmm("qkv", d, 3 * d)),
        ("vmm", Vmm("qk", hd, heads * keys, gb_values=d)),  # K row-major: a neuron per cached key, heads packed
        ("asic", "softmax", ("softmax", heads * keys, heads)),
        ("vmm", Vmm("av", keys, hd, repeat=heads, per_channel=True)),  # V column-major: a head per channel
        ("vmm", Vmm("o_proj", d, d)),
        ("asic", "residual1", ("add", d)),
        ("asic", "layernorm2", ("layernorm", d)),
        ("vmm", Vmm("fc1", d, ffn)),
        ("asic", "gelu", ("gelu", ffn)),
        ("vmm", Vmm("fc2", ffn, d)),
        ("asic", "residual2", ("add", d)),
    ]
    final = [("asic", "layernorm_f", ("layernorm", d)), ("vmm", Vmm("lm_head", d, cfg.vocab))]
    return layer, final


def asic_cycles(system: PimSystem, what: tuple) -> float:
    """Lane-cycles of an ASIC function over its elements (the per-element recipes in the docstring of
    the pim-gpt preset's op_cycles: Taylor exp, Newton-Raphson reciprocal, fast inverse sqrt)."""
    c = system.asic.op_cycles
    kind, n = what[0], what[1]
    if kind == "add":
        return n * c["add"]
    if kind == "layernorm":  # mean and variance sums, square, subtract, scale by rstd and gamma, add beta; one rsqrt
        return n * (4 * c["add"] + 3 * c["mul"]) + c["rsqrt"]
    if kind == "softmax":  # scale, max, subtract, exp, sum, multiply by the reciprocal; one reciprocal per row
        rows = what[2]
        return n * (c["mul"] + c["max"] + c["add"] + c["exp"] + c["add"] + c["mul"]) + rows * c["reciprocal"]
    if kind == "gelu":  # tanh form: x^3, fma, scale, tanh via exp and a reciprocal, 0.5 x (1 + tanh)
        return n * (5 * c["mul"] + 4 * c["add"] + c["exp"] + c["reciprocal"] + 2 * c["mul"])
    if kind == "partial_sums":
        return n * c["add"]
    raise ValueError(f"no ASIC cost for '{kind}'")


def decode_token(system: PimSystem | str, cfg, kv_len: int | None = None, memo: dict | None = None) -> TokenResult:
    """One decoded token of ``cfg`` at batch 1 with ``kv_len`` cached tokens (default: the full context)."""
    from arch.dram import load_dram

    system = load_pim_system(system)
    spec = load_dram(system.dram)
    lanes = system.need_lanes()
    clock = system.asic.clock
    kv_len = cfg.max_seq - 1 if kv_len is None else kv_len
    memo = {} if memo is None else memo
    layer, final = gpt_work(cfg, kv_len)
    t = dict.fromkeys(("pim", "move", "asic"), 0.0)
    acts = macs = rows_used = 0
    vmms = []
    for steps, repeat in ((layer, cfg.layers), (final, 1)):
        for step in steps:
            if step[0] == "vmm":
                vmm = step[1]
                if vmm.per_channel:  # one instance per channel at a time, on that channel's banks
                    vmm = Vmm(vmm.name, vmm.k, vmm.n, ceil(vmm.repeat / system.channels), vmm.gb_values)
                plan = plan_vmm(vmm, spec, 1 if step[1].per_channel else system.channels)
                pim_s, move_s = vmm_seconds(plan, spec, memo)
                t["pim"] += pim_s * vmm.repeat * repeat
                t["move"] += move_s * vmm.repeat * repeat
                if plan.segments > 1:  # the ASIC adds each neuron's partial sums
                    adds = vmm.n * (plan.segments - 1) * vmm.repeat
                    t["asic"] += asic_cycles(system, ("partial_sums", adds)) / lanes / clock * repeat
                acts += plan.acts * plan.banks_per_unit * vmm.repeat * repeat
                macs += plan.macs * vmm.repeat * repeat
                rows_used += plan.acts * vmm.repeat * repeat  # each (row, pass) holds its own weights
                vmms.append((plan, pim_s, move_s))
            else:
                t["asic"] += asic_cycles(system, step[2]) / lanes / clock * repeat
    if rows_used > spec.organization.rows:
        from arch import ArchError

        raise ArchError(f"{cfg.name} with {kv_len} cached tokens needs {rows_used} rows in every bank of "
                        f"'{system.name}' ({system.channels} x '{spec.name}' channels) but a bank has "
                        f"{spec.organization.rows}; short by {rows_used - spec.organization.rows} rows")
    seconds = t["pim"] + t["move"] + t["asic"]
    return TokenResult(cfg.name, system.name, seconds, t["pim"], t["move"], t["asic"],
                       1.0 - acts / macs if macs else 1.0, tuple(vmms))


def vmm_seconds(plan: VmmPlan, spec, memo: dict | None = None, period_rows: int = PERIOD_ROWS) -> tuple[float, float]:
    """(MAC stream seconds, data movement seconds) of one channel's program for ``plan`` from the
    command-level engine: every pass, each longer than ``2 * period_rows`` rows extended by its period."""
    total = 0.0
    for segment, cols in enumerate(plan.columns):
        key = (spec.name, plan.rows, cols, plan.gb_writes[segment], plan.result_reads)
        if memo is None or key not in memo:
            t = _program_seconds(plan, spec, segment) if plan.rows <= 2 * period_rows else \
                _extended(plan, spec, segment, period_rows)
            if memo is None:
                total += t
                continue
            memo[key] = t
        total += memo[key]
    move = (sum(plan.gb_writes) + plan.result_reads * plan.segments) * spec.timing.nBL * spec.timing.tCK_ps * 1e-12
    return max(0.0, total - move), move


def _extended(plan: VmmPlan, spec, segment: int, p: int) -> float:
    """A pass's time from programs of ``p`` and ``2p`` rows, extended by the per-row period to every row."""
    t1, t2 = _program_seconds(plan, spec, segment, p), _program_seconds(plan, spec, segment, 2 * p)
    return t1 + (plan.rows - p) * (t2 - t1) / p


def _program_seconds(plan: VmmPlan, spec, segment: int, rows: int | None = None) -> float:
    from sim.dram.engine import run_program

    return run_program(spec, _commands(vmm_program(plan, spec, segment, rows))).seconds


def _commands(program: list[tuple]) -> list:
    """Our (kind, row, column) tuples as the engine's commands."""
    from sim.dram.engine import Command

    return [Command(0, kind, 0, 0, 0, 0, row, col) for kind, row, col in program]


def fit_lanes(system: PimSystem | str, cfg, share: float, memo: dict | None = None) -> int:
    """The fewest ASIC lanes at which the non-VMM (ASIC) share of ``cfg``'s token is at most ``share``
    (the ASIC time falls as 1/lanes, the rest does not depend on them)."""
    from arch.pim import pim_with

    system = load_pim_system(system)
    one = decode_token(pim_with(system, lanes=1), cfg, memo=memo)
    rest = one.seconds - one.asic_s
    # asic(l) = asic(1) / l; share = asic(l) / (rest + asic(l))  =>  l = asic(1) (1 - share) / (share rest)
    lanes = max(1, ceil(one.asic_s * (1 - share) / (share * rest)))
    while decode_token(pim_with(system, lanes=lanes), cfg, memo=memo).non_vmm_share > share:
        lanes += 1
    return lanes
