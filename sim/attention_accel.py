"""Attention on FuseMax, FLAT and unfused accelerators, simulated tile by tile (simpy).

Three schedules (dataflows) run on the hardware of an architecture preset with a 2D array
``pe2d``, a 1D array ``pe1d``, a ``buffer`` and ``dram`` (arch/presets/fusemax.yaml, flat.yaml,
unfused.yaml, flat-edge.yaml):

- ``fusemax``: the 1-pass cascade (workloads.attention.attention_1pass) bound as the paper
  binds it -- 2D: BQK, LM, SLN, SLD, SLNV; 1D: RM, PRM, SPD, RD, SPNV, RNV, AV. An *epoch* is
  one 256-key tile (m1) against one 256-query tile; P1 query tiles stay resident while every
  key tile streams past once. Both arrays pick the oldest ready epoch's work, and at most
  ``FUSEMAX_WINDOW`` epochs are in flight, so BQK/LM of epoch d runs while the 1D array does
  RM of epoch c (inter-epoch pipelining) and each array alternates between epochs' stages
  (intra-epoch interleaving, at the granularity of a stage rather than of a cycle).
- ``flat``: QK on the 2D array, the 3-pass softmax (max; exp and sum; divide) on the 1D array,
  AV on the 2D array, fused tile by tile over a row block of queries whose QK fiber stays in
  the buffer (tiles that do not fit spill: seven DRAM trips each), or -- when spilling would
  cost more -- QK and A streamed through DRAM with one query row's fiber on chip at a time.
- ``unfused``: QK, softmax and AV as three kernels over the whole batch, one after another,
  every intermediate written to and read back from DRAM.

Long runs are loops of identical iterations; sim.periodic detects the steady state and
extrapolates exactly, so a point at 1M tokens costs a few thousand simulated tiles.
Time is integer cycles of the 940 MHz clock; DRAM transfers round up to whole cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from math import ceil

from arch.loader import load_arch
from arch.schema import Architecture
from sim.periodic import extrapolate
from sim.taskgraph import Task, run_tasks

UNITS = ("pe2d", "pe1d", "dram")

FUSEMAX_BINDING = {"pe2d": ("BQK", "LM", "SLN", "SLD", "SLNV"),
                   "pe1d": ("RM", "PRM", "SPD", "RD", "SPNV", "RNV", "AV")}
"""Which array runs each Einsum of the 1-pass cascade (workloads.attention.attention_1pass) on
FuseMax (paper; shared/reference/fusemax.md). BK and BV only re-index K and V into tiles."""

THREE_PASS_BINDING = {"pe2d": ("QK", "AV"), "pe1d": ("GM", "SN", "SD", "A")}
"""Which array runs each Einsum of the 3-pass cascade (attention_3pass) on FLAT and unfused."""

NEEDS = {"fusemax": {"pe2d": ("mac", "max", "add", "exp"), "pe1d": ("mac", "max", "add", "exp", "div")},
         "flat": {"pe2d": ("mac",), "pe1d": ("max", "exp", "add", "div")},
         "unfused": {"pe2d": ("mac",), "pe1d": ("max", "exp", "add", "div")}}
"""The ops each dataflow asks of each array (besides rf_read / rf_write, for energy)."""
DATAFLOWS = ("fusemax", "flat", "unfused")
PRESET_DATAFLOW = {"fusemax": "fusemax", "flat": "flat", "flat-edge": "flat", "unfused": "unfused"}

FUSEMAX_WINDOW = 4
"""Epochs in flight on FuseMax (one BQK/SLN register per 2D PE each): BQK/LM of epoch d runs
while epoch c finishes. Four is the fewest at which the 1D array never waits on the chain
BQK -> RM -> SLN -> SLNV -> RNV (2: 89 %, 3: 94 %, 4: 100 % 1D busy at BERT 1K; bench/bench_fusemax.py)."""

FLAT_WINDOW = 2
"""Query-row blocks in flight on FLAT and unfused: double buffering at the fusion granularity."""

FLAT_OFFCHIP_ROWS = 1024
"""Queries per K/V pass when FLAT streams QK and A through DRAM: the row granularity the
FuseMax artifact's FLAT search chose at 256K-1M tokens (data/pregenerated/flat_validation.csv)."""

RF_ACCESSES: dict[str, dict[str, tuple[int, int]]] = {
    "fusemax": {"pe2d": (1, 1), "pe1d": (1, 1)},
    "flat": {"pe2d": (3, 3), "pe1d": (1, 1)},
    "unfused": {"pe2d": (3, 3), "pe1d": (1, 1)},
}
"""(reads, writes) of a PE's register file per cycle of PE work, by dataflow and array.
FLAT and unfused: the FuseMax artifact models their 2D array as Timeloop's Eyeriss-style PE
with one register per operand -- per MAC, Q and K are each filled and read and the partial sum
read and updated (its Timeloop stats for unfused QK at BERT 1K: 786,432 reads and 786,432
fills of Q and of K, 774,144 reads and 786,432 updates of QK, per PE). FuseMax and every 1D
array: assumed one operand read and one result write per op (operands on neighbour links)."""

SPILL_TRIPS = 7
"""DRAM trips of a spilled QK tile on FLAT: written after QK, read for the max pass, read and
written by exp/sum, read and written by the divide, read by AV."""


@dataclass(frozen=True)
class AttentionShape:
    """One attention layer's sizes: batch, heads, queries P, keys M, head dims E and F."""

    batch: int
    heads: int
    queries: int
    keys: int
    e: int
    f: int
    word_bytes: int = 2  # fp16

    @property
    def instances(self) -> int:
        return self.batch * self.heads

    @property
    def macs(self) -> int:
        """MACs of QK and AV: what every dataflow must execute on its 2D array (at least)."""
        return self.instances * self.queries * self.keys * (self.e + self.f)

    @classmethod
    def of_model(cls, model, seq: int, batch: int = 64) -> "AttentionShape":
        """Self-attention of an encoder ``model`` (workloads.zoo) at ``seq`` tokens."""
        return cls(batch, model.heads, seq, seq, model.head_dim, model.head_dim)


@dataclass(frozen=True)
class Hardware:
    """What the schedules read from an architecture: array sizes, op cycles, rates, sizes."""

    arch: Architecture
    rows: int  # 2D array rows: keys of one tile (M0)
    cols: int  # 2D array columns: queries of one tile
    lanes: int  # 1D array PEs
    clock_hz: float
    dram_bytes_per_cycle: float
    buffer_bytes: int

    @classmethod
    def of(cls, arch: Architecture) -> "Hardware":
        pe2d, pe1d = arch.unit("pe2d"), arch.unit("pe1d")
        dram, buf = arch.memory("dram"), arch.memory("buffer")
        clock = arch.clock_hz(pe2d)
        rate = dram.port_for("input", "read").bandwidth.bytes_per_cycle(clock)
        return cls(arch, pe2d.rows, pe2d.cols, pe1d.cols, clock, rate, int(buf.capacity))

    def cycles(self, unit: str, op: str) -> int:
        return self.arch.unit(unit).op_cost(op)[0]

    def transfer(self, nbytes: int) -> int:
        return max(1, ceil(nbytes / self.dram_bytes_per_cycle))


@dataclass(frozen=True)
class AttentionResult:
    """A simulated attention layer: latency, utilization, traffic, energy and what made them."""

    arch: str
    dataflow: str
    shape: AttentionShape
    cycles: int
    seconds: float
    busy: dict[str, int]  # unit -> busy cycles
    tally: dict[str, int]  # "unit.op" action counts, "dram.read"/"dram.write"/"buffer.*" bytes
    energy_pj: dict[str, float]  # component -> pJ
    extrapolated: bool
    events: int  # simpy events actually simulated
    choice: dict = field(default_factory=dict)  # schedule parameters chosen (P1, FLAT regime)

    @property
    def utilization(self) -> dict[str, float]:
        return {u: self.busy[u] / self.cycles for u in UNITS}

    @property
    def traffic_bytes(self) -> int:
        return self.tally.get("dram.read", 0) + self.tally.get("dram.write", 0)

    @property
    def total_energy_pj(self) -> float:
        return sum(self.energy_pj.values())


# --- FuseMax ---------------------------------------------------------------------------


def _tasks_builder() -> tuple[list[Task], Callable[..., Task]]:
    """An empty task list and the function that appends a task to it (None deps dropped)."""
    tasks: list[Task] = []

    def add(unit: str, cycles: int, deps, prio: int, tally: dict) -> Task:
        t = Task(unit, cycles, tuple(d for d in deps if d is not None), prio, tally)
        tasks.append(t)
        return t

    return tasks, add


def fusemax_p1(hw: Hardware, sh: AttentionShape) -> int:
    """Resident query tiles: the largest divisor of P/cols whose Q, RM, RD and RNV fit in the
    buffer beside one K and one V tile (shared/reference/fusemax.md)."""
    tiles = sh.queries // hw.cols
    per_tile = hw.cols * (sh.e + 2 + sh.f) * sh.word_bytes
    kv = hw.rows * (sh.e + sh.f) * sh.word_bytes
    fits = [d for d in range(1, tiles + 1) if tiles % d == 0 and d * per_tile + kv <= hw.buffer_bytes]
    if not fits:
        from mappers.errors import MappingError

        raise MappingError(f"buffer: {hw.buffer_bytes} B cannot hold one query tile "
                           f"({per_tile + kv} B needed) on {hw.arch.name}")
    return max(fits)


def _fusemax_tasks(hw: Hardware, sh: AttentionShape, p1: int, groups: int, m1: int) -> list[Task]:
    """The task graph of ``groups`` query groups (P1 tiles each) against ``m1`` key tiles."""
    r, c, w, e, f = hw.rows, hw.cols, sh.word_bytes, sh.e, sh.f
    lane_rounds = ceil(c / hw.lanes)
    cyc2 = {op: hw.cycles("pe2d", op) for op in ("mac", "max", "add", "exp")}
    cyc1 = {op: hw.cycles("pe1d", op) for op in ("mac", "max", "add", "exp", "div")}
    d_bqk = e * cyc2["mac"] + cyc2["max"]  # BQK, then LM (spatial max over the rows)
    d_sln = cyc2["exp"] + cyc2["add"]  # SLN, then SLD (spatial sum)
    d_slnv = f * cyc2["mac"]
    d_rm = cyc1["max"] * lane_rounds
    d_prm = (cyc1["exp"] + cyc1["mac"] + cyc1["add"]) * lane_rounds  # PRM, SPD, RD
    d_rnv = f * (cyc1["mac"] + cyc1["add"]) * lane_rounds  # SPNV, RNV
    d_av = f * cyc1["div"] * lane_rounds
    tile_2d, q = r * c, c
    t_bqk = {"pe2d.mac": tile_2d * e, "pe2d.max": tile_2d, "pe2d.rf": tile_2d * d_bqk,
             "buffer.read": (c * e + r * e) * w}
    t_sln = {"pe2d.exp": tile_2d, "pe2d.add": tile_2d, "pe2d.rf": tile_2d * d_sln}
    t_slnv = {"pe2d.mac": tile_2d * f, "pe2d.rf": tile_2d * d_slnv, "buffer.read": r * f * w}
    t_rm = {"pe1d.max": q, "pe1d.rf": q * cyc1["max"], "buffer.read": q * w, "buffer.write": q * w}
    t_prm = {"pe1d.exp": q, "pe1d.mac": q, "pe1d.add": q, "pe1d.rf": q * (cyc1["exp"] + 2),
             "buffer.read": q * w, "buffer.write": q * w}
    t_rnv = {"pe1d.mac": q * f, "pe1d.add": q * f, "pe1d.rf": q * f * 2,
             "buffer.read": q * f * w, "buffer.write": q * f * w}
    t_av = {"pe1d.div": q * f, "pe1d.rf": q * f * cyc1["div"], "buffer.read": q * f * w,
            "buffer.write": q * f * w}
    q_bytes, k_bytes, v_bytes, o_bytes = p1 * c * e * w, r * e * w, r * f * w, c * f * w

    tasks, add = _tasks_builder()
    epochs: list[Task] = []  # SLNV of every epoch, in program order (the window)
    k_users: list[Task] = []  # last BQK of each key tile (frees its K buffer)
    v_users: list[Task] = []  # last SLNV of each key tile (frees its V buffer)
    group_ends: list[list[Task]] = []
    for g in range(groups):
        base = g * m1 * p1
        free_q = group_ends[g - 2] if g >= 2 else []
        load_q = add("dram", hw.transfer(q_bytes), free_q, base * 8,
                     {"dram.read": q_bytes, "buffer.write": q_bytes})
        rm_prev: list[Task | None] = [None] * p1
        prm_prev: list[Task | None] = [None] * p1
        rnv_prev: list[Task | None] = [None] * p1
        for m in range(m1):
            j = len(k_users)
            load_k = add("dram", hw.transfer(k_bytes), [k_users[j - 2]] if j >= 2 else [], (base + m * p1) * 8 + 1,
                         {"dram.read": k_bytes, "buffer.write": k_bytes})
            load_v = add("dram", hw.transfer(v_bytes), [v_users[j - 2]] if j >= 2 else [], (base + m * p1) * 8 + 2,
                         {"dram.read": v_bytes, "buffer.write": v_bytes})
            for i in range(p1):
                n = base + m * p1 + i
                window = epochs[n - FUSEMAX_WINDOW] if n >= FUSEMAX_WINDOW else None
                bqk = add("pe2d", d_bqk, [load_q, load_k, window], n * 8, t_bqk)
                rm = add("pe1d", d_rm, [bqk, rm_prev[i]], n * 8 + 1, t_rm)
                sln = add("pe2d", d_sln, [rm], n * 8 + 2, t_sln)
                prm = add("pe1d", d_prm, [rm, prm_prev[i]], n * 8 + 3, t_prm)
                slnv = add("pe2d", d_slnv, [sln, load_v], n * 8 + 4, t_slnv)
                rnv = add("pe1d", d_rnv, [slnv, prm, rnv_prev[i]], n * 8 + 5, t_rnv)
                rm_prev[i], prm_prev[i], rnv_prev[i] = rm, prm, rnv
                epochs.append(slnv)
            k_users.append(bqk)  # the key tile's last BQK and SLNV free its K and V buffers
            v_users.append(slnv)
        ends = []
        for i in range(p1):
            n = base + m1 * p1 + i
            av = add("pe1d", d_av, [rnv_prev[i]], n * 8 + 6, t_av)
            ends.append(add("dram", hw.transfer(o_bytes), [av], n * 8 + 7,
                            {"dram.write": o_bytes, "buffer.read": o_bytes}))
        group_ends.append(ends)
    return tasks


# --- FLAT ------------------------------------------------------------------------------


def _flat_avail(hw: Hardware, sh: AttentionShape) -> int:
    """Buffer bytes left for QK fibers once Q, K, V and O tiles are double buffered."""
    staging = 2 * (hw.cols * sh.e + hw.rows * sh.e + hw.rows * sh.f + hw.cols * sh.f) * sh.word_bytes
    return hw.buffer_bytes - staging


def flat_regime(hw: Hardware, sh: AttentionShape) -> dict:
    """FLAT's fusion choice: fused with the QK fiber on chip (spilling what does not fit) or
    QK and A through DRAM, whichever moves fewer DRAM bytes -- as FLAT's search would."""
    fused = flat_traffic(hw, sh, "fused")
    offchip = flat_traffic(hw, sh, "offchip")
    if fused <= offchip:
        return {"regime": "fused", "spilled_tiles": _flat_spill(hw, sh)[1]}
    return {"regime": "offchip", "spilled_tiles": 0}


def _flat_spill(hw: Hardware, sh: AttentionShape) -> tuple[int, int]:
    """(fibers resident, spilled tiles per query tile) of the fused regime."""
    w = sh.word_bytes
    fiber = hw.cols * sh.keys * w
    tile = hw.rows * hw.cols * w
    avail = _flat_avail(hw, sh)
    resident = min(FLAT_WINDOW, avail // fiber)
    spilled = 0 if resident else sh.keys // hw.rows - avail // tile
    return resident, spilled


def flat_traffic(hw: Hardware, sh: AttentionShape, regime: str) -> int:
    """Closed-form DRAM bytes of one FLAT attention layer (the oracle of the simulation)."""
    r, c, w = hw.rows, hw.cols, sh.word_bytes
    P, M, E, F = sh.queries, sh.keys, sh.e, sh.f
    qt, mt = P // c, M // r
    if regime == "fused":
        _, spilled = _flat_spill(hw, sh)
        per_q = mt * (c * E + r * E + r * F) + c * F + SPILL_TRIPS * spilled * r * c
    else:
        rows = min(FLAT_OFFCHIP_ROWS, P)
        per_q = c * E + c * F + (M * E + M * F) * c // rows + 4 * c * M
    return sh.instances * qt * per_q * w


FLAT_CHUNKS = 16
"""Key tiles are simulated in at most this many chunks per query tile: the 1D passes are
long and uniform, so finer tasks change only fill and drain, by under a chunk each."""


def _flat_fused_tasks(hw: Hardware, sh: AttentionShape, n: int) -> list[Task]:
    """``n`` query tiles of FLAT's fused schedule over every key tile, in chunks of key tiles."""
    r, c, w, e, f = hw.rows, hw.cols, sh.word_bytes, sh.e, sh.f
    mt = sh.keys // r
    k = max(1, mt // FLAT_CHUNKS)  # key tiles per chunk
    chunks = ceil(mt / k)
    per_lane = r * c // hw.lanes
    cy = {op: hw.cycles("pe1d", op) for op in ("max", "exp", "add", "div")}
    mac2 = hw.cycles("pe2d", "mac")
    resident, spilled = _flat_spill(hw, sh)
    first_spilled = mt - spilled
    tile_b = r * c * w
    tasks, add = _tasks_builder()

    def spills(j: int) -> int:
        lo, hi = j * k, min(mt, (j + 1) * k)
        return max(0, hi - max(lo, first_spilled))

    def dram(nbytes: int, deps, prio: int, tally: dict) -> Task | None:
        return add("dram", hw.transfer(nbytes), deps, prio, tally) if nbytes else None

    avs: list[list[Task]] = []
    for p in range(n):
        base = p * chunks * 4
        mx = []
        for j in range(chunks):
            t, s_ = min(k, mt - j * k), spills(j)
            slot = avs[p - max(resident, 1)][j] if p >= max(resident, 1) and (resident or s_ < t) else None
            ld = dram((c * e + r * e) * w * t, [slot], base + j, {"dram.read": (c * e + r * e) * w * t})
            qk = add("pe2d", e * mac2 * t, [ld], base + j,
                     {"pe2d.mac": r * c * e * t, "pe2d.rf": r * c * e * mac2 * t, "buffer.write": tile_b * t})
            out = dram(tile_b * s_, [qk], base + j, {"dram.write": tile_b * s_})
            back = dram(tile_b * s_, [out], base + j, {"dram.read": tile_b * s_})
            mx.append(add("pe1d", per_lane * cy["max"] * t, [qk, back], base + j,
                          {"pe1d.max": r * c * t, "pe1d.rf": r * c * cy["max"] * t, "buffer.read": tile_b * t}))
        sn = []
        for j in range(chunks):
            t, s_ = min(k, mt - j * k), spills(j)
            back = dram(tile_b * s_, mx, base + chunks + j, {"dram.read": tile_b * s_})
            op = add("pe1d", per_lane * (cy["exp"] + cy["add"]) * t, [*mx, back], base + chunks + j,
                     {"pe1d.exp": r * c * t, "pe1d.add": r * c * t, "pe1d.rf": r * c * (cy["exp"] + cy["add"]) * t,
                      "buffer.read": tile_b * t, "buffer.write": tile_b * t})
            sn.append(dram(tile_b * s_, [op], base + chunks + j, {"dram.write": tile_b * s_}) or op)
        av = []
        for j in range(chunks):
            t, s_ = min(k, mt - j * k), spills(j)
            back = dram(tile_b * s_, sn, base + 2 * chunks + j, {"dram.read": tile_b * s_})
            dv = add("pe1d", per_lane * cy["div"] * t, [*sn, back], base + 2 * chunks + j,
                     {"pe1d.div": r * c * t, "pe1d.rf": r * c * cy["div"] * t,
                      "buffer.read": tile_b * t, "buffer.write": tile_b * t})
            out = dram(tile_b * s_, [dv], base + 2 * chunks + j, {"dram.write": tile_b * s_})
            back = dram(tile_b * s_, [out], base + 2 * chunks + j, {"dram.read": tile_b * s_})
            ld = dram(r * f * w * t, [dv], base + 2 * chunks + j, {"dram.read": r * f * w * t})
            av.append(add("pe2d", f * mac2 * t, [dv, back, ld], base + 2 * chunks + j - 4 * chunks,
                          {"pe2d.mac": r * c * f * t, "pe2d.rf": r * c * f * mac2 * t, "buffer.read": tile_b * t}))
        dram(c * f * w, av, base + 3 * chunks, {"dram.write": c * f * w, "buffer.read": c * f * w})
        avs.append(av)
    return tasks


def _streamed_tasks(hw: Hardware, sh: AttentionShape, n: int, barrier: bool, rows: int) -> list[Task]:
    """``n`` query tiles with QK and A through DRAM: FLAT's off-chip regime (K and V read once
    per ``rows`` queries, query tiles pipelined two deep) or, with ``barrier``, the unfused
    kernels (every QK before any softmax before any AV, each kernel pipelined two deep)."""
    r, c, w, e, f, M = hw.rows, hw.cols, sh.word_bytes, sh.e, sh.f, sh.keys
    mt = M // r
    mac2 = hw.cycles("pe2d", "mac")
    cy = {op: hw.cycles("pe1d", op) for op in ("max", "exp", "add", "div")}
    sm_ops = cy["max"] + cy["exp"] + cy["add"] + cy["div"]
    fiber = c * M * w
    # K and V are read once per ``rows`` queries, spread evenly over those query tiles (whole bytes, up)
    k_share, v_share = ceil(M * e * w * c / rows), ceil(M * f * w * c / rows)
    tasks, add = _tasks_builder()
    qks: list[Task] = []
    sms: list[Task] = []
    avs: list[Task] = []

    def window(done: list[Task], p: int) -> Task | None:
        return done[p - FLAT_WINDOW] if p >= FLAT_WINDOW else None

    def stream(deps: list, chunk_deps: list, prio: int, unit: str, cycles: int, tally: dict,
               read: int, write: int) -> list[Task]:
        """A kernel over one query tile as FLAT_CHUNKS row blocks: read, compute, write, the next
        block's read overlapping this block's compute (double-buffered staging). Block i waits
        for ``deps`` and ``chunk_deps[i]`` (the same rows of the kernel before). Returns the
        blocks' writes."""
        k = FLAT_CHUNKS

        def part(total: int, i: int) -> int:  # block i's share; the shares add up to total
            return total * (i + 1) // k - total * i // k

        outs: list[Task] = []
        ops: list[Task] = []
        for i in range(k):
            stage = [*deps, chunk_deps[i], ops[i - 2] if i >= 2 else None]
            ld = add("dram", hw.transfer(part(read, i)), stage, prio, {"dram.read": part(read, i)})
            ops.append(add(unit, part(cycles, i), [ld], prio, {key: part(v, i) for key, v in tally.items()}))
            outs.append(add("dram", hw.transfer(part(write, i)), [ops[-1]], prio + 1, {"dram.write": part(write, i)}))
        return outs

    none = [None] * FLAT_CHUNKS

    def qk(deps: list, chunk_deps: list, prio: int) -> list[Task]:
        return stream(deps, chunk_deps, prio, "pe2d", mt * e * mac2,
                      {"pe2d.mac": c * M * e, "pe2d.rf": c * M * e * mac2, "buffer.write": fiber,
                       "buffer.read": fiber}, c * e * w + k_share, fiber)

    def softmax(deps: list, chunk_deps: list, prio: int) -> list[Task]:
        # a block of query rows' fibers at a time, on chip: max, exp and sum, divide; QK in, A out
        return stream(deps, chunk_deps, prio, "pe1d", c * M // hw.lanes * sm_ops,
                      {"pe1d.max": c * M, "pe1d.exp": c * M, "pe1d.add": c * M, "pe1d.div": c * M,
                       "pe1d.rf": c * M * sm_ops, "buffer.write": 3 * fiber, "buffer.read": 4 * fiber},
                      fiber, fiber)

    def av(deps: list, chunk_deps: list, prio: int) -> list[Task]:
        return stream(deps, chunk_deps, prio, "pe2d", mt * f * mac2,
                      {"pe2d.mac": c * M * f, "pe2d.rf": c * M * f * mac2, "buffer.write": fiber,
                       "buffer.read": fiber + c * f * w}, fiber + v_share, c * f * w)

    def join(blocks: list[Task]) -> Task:
        return add(None, 0, blocks, 0, {})

    if barrier:
        for p in range(n):
            qks.append(join(qk([window(qks, p)], none, 6 * p)))
        for p in range(n):
            sms.append(join(softmax([*qks, window(sms, p)], none, 6 * (n + p))))
        for p in range(n):
            avs.append(join(av([*sms, window(avs, p)], none, 6 * (2 * n + p))))
    else:
        for p in range(n):
            q = qk([window(avs, p)], none, 6 * p)
            sm = softmax([], q, 6 * p + 2)
            a_ = av([], sm, 6 * p + 4)
            qks.append(join(q))
            sms.append(join(sm))
            avs.append(join(a_))
    return tasks


# --- running and costing ---------------------------------------------------------------


def _counts(tasks: list[Task], simulated: list[int]) -> dict[str, int]:
    run = run_tasks(tasks, UNITS)
    simulated.append(run.events)
    return {"cycles": run.cycles, **{f"busy.{u}": b for u, b in run.busy.items()}, **run.tally}


def energy_breakdown(arch: Architecture, tally: dict[str, int], dataflow: str) -> dict[str, float]:
    """pJ per component from action counts and the preset's per-action energies."""
    out: dict[str, float] = {}
    for unit in ("pe2d", "pe1d"):
        u = arch.unit(unit)
        reads, writes = RF_ACCESSES[dataflow][unit]
        for key, count in tally.items():
            if not key.startswith(unit + "."):
                continue
            op = key.split(".", 1)[1]
            if op == "rf":  # PE-cycles of work, each with the dataflow's register accesses
                out[f"{unit}.rf"] = count * (reads * u.op_cost("rf_read")[1] + writes * u.op_cost("rf_write")[1])
            else:
                out[f"{unit}.{op}"] = count * u.op_cost(op)[1]
    dram, buf = arch.memory("dram"), arch.memory("buffer")
    dram_b, buf_b = dram.word_bits // 8, buf.word_bits // 8
    out["dram"] = (tally.get("dram.read", 0) / dram_b * dram.read_pj_per_word
                   + tally.get("dram.write", 0) / dram_b * dram.write_pj_per_word)
    out["buffer"] = (tally.get("buffer.read", 0) / buf_b * buf.read_pj_per_word
                     + tally.get("buffer.write", 0) / buf_b * buf.write_pj_per_word)
    return out


def _check(a: Architecture, dataflow: str | None, sh: AttentionShape) -> None:
    """One clear line for an architecture or shape the dataflow cannot run."""
    from sim.errors import InputError

    if dataflow not in DATAFLOWS:
        raise InputError(f"architecture '{a.name}': no attention dataflow given or implied "
                         f"(presets fusemax, flat, flat-edge, unfused; dataflows {', '.join(DATAFLOWS)})")
    units = {u.name: u for u in a.compute}
    for unit, ops in NEEDS[dataflow].items():
        if unit not in units:
            raise InputError(f"architecture '{a.name}': the {dataflow} dataflow needs a compute array "
                             f"named '{unit}' (has: {', '.join(units)})")
        missing = [op for op in (*ops, "rf_read", "rf_write") if op not in units[unit].ops]
        if missing:
            raise InputError(f"architecture '{a.name}': compute[{unit}].ops lacks {', '.join(missing)}, "
                             f"which the {dataflow} dataflow needs")
    for mem in ("dram", "buffer"):
        if mem not in {m.name for m in a.memories}:
            raise InputError(f"architecture '{a.name}': the {dataflow} dataflow needs a memory named '{mem}'")
    rows, cols = units["pe2d"].rows, units["pe2d"].cols
    if sh.queries % cols or sh.keys % rows:
        raise InputError(f"attention: queries ({sh.queries}) and keys ({sh.keys}) must be multiples of "
                         f"the {rows}x{cols} 2D array of '{a.name}'")


def simulate_attention(arch: str | Architecture, shape: AttentionShape, dataflow: str | None = None,
                       full: bool = False) -> AttentionResult:
    """Simulate one attention layer of ``shape`` on ``arch`` with its (or the given) dataflow.

    ``full``: simulate every iteration instead of extrapolating the periodic state (for tests
    that check the extrapolation; slow beyond a few thousand tiles)."""
    a = load_arch(arch)
    dataflow = dataflow or PRESET_DATAFLOW.get(a.name)
    _check(a, dataflow, shape)
    hw = Hardware.of(a)
    sh = shape
    qt, mt = sh.queries // hw.cols, sh.keys // hw.rows
    choice: dict = {}
    simulated: list[int] = []
    if dataflow == "fusemax":
        p1 = fusemax_p1(hw, sh)
        choice = {"p1": p1}
        groups = sh.instances * qt // p1

        def per_groups(g: int) -> dict[str, int]:
            if full:
                return _counts(_fusemax_tasks(hw, sh, p1, g, mt), simulated)
            return extrapolate(lambda m: _counts(_fusemax_tasks(hw, sh, p1, g, m), simulated), mt, start=2)[0]

        counts, ext = (per_groups(groups), False) if full else extrapolate(per_groups, groups, start=2)
        ext = not full and (ext or mt > 4)
    elif dataflow == "flat":
        choice = flat_regime(hw, sh)
        if choice["regime"] == "fused":
            run = lambda n: _counts(_flat_fused_tasks(hw, sh, n), simulated)  # noqa: E731
        else:
            rows = min(FLAT_OFFCHIP_ROWS, sh.queries)
            run = lambda n: _counts(_streamed_tasks(hw, sh, n, False, rows), simulated)  # noqa: E731
    else:
        run = lambda n: _counts(_streamed_tasks(hw, sh, n, True, sh.queries), simulated)  # noqa: E731
    if dataflow != "fusemax":
        n = sh.instances * qt
        counts, ext = (run(n), False) if full else extrapolate(run, n, start=3)
    events = sum(simulated)
    cycles = counts.pop("cycles")
    busy = {u: counts.pop(f"busy.{u}") for u in UNITS}
    return AttentionResult(a.name, dataflow, sh, cycles, cycles / hw.clock_hz, busy, counts,
                           energy_breakdown(a, counts, dataflow), ext, events, choice)
