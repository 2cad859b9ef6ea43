"""The analytical cost model of a mapping: traffic by reuse analysis, compute by closed form.

Fast enough for a mapper's inner loop, and independent of the event simulator, which counts
the same traffic by walking every tile; the tests hold the two to exact agreement.

Reuse rule (Timeloop-style): flatten the loops of every level above boundary b (memory b-1 →
memory b), outermost first. A tensor's tile at b is re-fetched whenever one of its relevant
loops advances, so it is fetched ∏(trips of loops at or outside its innermost relevant loop
that has more than one trip) ÷ (those relevant trips) × (all its tiles) times: ``rep × |T|``
bytes, where ``rep`` is the product of the irrelevant trips outside its innermost relevant
loop. The output is written back ``rep × |C|`` and re-read ``(rep − 1) × |C|`` (partial sums).

Bypass: a role's tiles live only at its kept levels (Mapping.kept); at each kept level b > 0
they cross directly from the previous kept level a, ``rep`` (of boundary b) times, over memory
a's port and the a–b link.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import product
from math import prod

from mappers.mapping import ROLES, Mapping
from mappers.systolic import array_accesses, fold_plan
from mappers.view import MatmulView


def transfer_cycles(nbytes: float, bytes_per_cycle: float) -> int:
    """Whole cycles to move ``nbytes`` at ``bytes_per_cycle`` (0 when unbounded)."""
    if nbytes <= 0 or math.isinf(bytes_per_cycle):
        return 0
    return math.ceil(nbytes / bytes_per_cycle - 1e-9)


def port_rate(arch, memory, role: str, direction: str, clock_hz: float, peer: str | None = None,
              memo: dict | None = None):
    """(port key, bytes per cycle) of the port of ``memory`` a transfer uses; links may slow it."""
    if memo is not None:
        key = ("rate", memory.name, role, direction, peer)
        if key not in memo:
            memo[key] = port_rate(arch, memory, role, direction, clock_hz, peer)
        return memo[key]
    port = memory.port_for(role, direction)
    rate = math.inf if port.bandwidth is None else port.bandwidth.bytes_per_cycle(clock_hz)
    if peer is not None:
        link = arch.link_between(memory.name, peer)
        if link is not None and link.bandwidth is not None:
            rate = min(rate, link.bandwidth.bytes_per_cycle(clock_hz))
    return (memory.name, port.name), rate


def tile_size_counts(extent: int, chain: list[int]) -> Counter:
    """How many tiles of each size a rank of ``extent`` splits into under nested tiles ``chain``."""
    counts = Counter({extent: 1})
    for t in chain:
        nxt: Counter = Counter()
        for size, c in counts.items():
            q, r = divmod(size, t)
            if q:
                nxt[t] += c * q
            if r:
                nxt[r] += c
        counts = nxt
    return counts


def last_tile_size(extent: int, chain: list[int]) -> int:
    """Size of the last tile along a rank at the depth of ``chain``."""
    size = extent
    for t in chain:
        size -= (math.ceil(size / t) - 1) * t
    return size


def tile_duration(view: MatmulView, unit, memory, dims: tuple[int, int, int, int], continues: bool,
                  clock_hz: float) -> tuple[int, int]:
    """(cycles, stall-free cycles) of one compute tile: fold cycles, or longer if the feeding
    memory's ports cannot keep up with the array's reads and writes."""
    b, m, n, k = dims
    plan = fold_plan(unit.dataflow, unit.rows, unit.cols, m, n, k)
    base = plan.cycles(unit.overlap_folds, b)
    acc = array_accesses(unit.dataflow, unit.rows, unit.cols, m, n, k, continues)
    moves = {("input", "read"): acc.input_reads, ("weight", "read"): acc.weight_reads,
             ("output", "read"): acc.output_reads, ("output", "write"): acc.output_writes}
    lanes: Counter = Counter()
    for (role, direction), words in moves.items():
        if words:
            lanes[port_rate(None, memory, role, direction, clock_hz)] += b * words * view.elem_bytes[role]
    stall = busiest_port(lanes)
    return max(base, stall), base


@dataclass(frozen=True)
class Cost:
    """What the analytical model predicts for one mapping."""

    latency_cycles: int
    compute_cycles: int  # Σ compute-tile durations, buffer-port stalls included
    stall_free_cycles: int  # Σ closed-form fold cycles
    macs: int
    traffic: dict[str, dict[str, dict[str, float]]]  # memory -> tensor -> {"read", "write"} bytes
    energy_breakdown: dict[str, float]  # "component.action" -> pJ
    bound_cycles: int  # roofline lower bound: max(peak compute, every port's bytes / bandwidth)

    @property
    def energy_pj(self) -> float:
        return sum(self.energy_breakdown.values())

    def level_bytes(self) -> dict[str, float]:
        return {mem: sum(d["read"] + d["write"] for d in per.values()) for mem, per in self.traffic.items()}


def boundary_loops(mapping: Mapping, b: int) -> list[tuple[str, int]]:
    """The loops above boundary b, flattened outermost first: (rank, trips)."""
    return [(r, mapping.trips(j)[r]) for j in range(b) for r in mapping.levels[j].order]


def port_cycles(lane_bytes: Counter) -> Counter:
    """Cycles each port is busy, from bytes per lane: a lane is (port key, rate), so a port that
    serves peers behind links of different speeds sums each peer's bytes at that peer's rate."""
    cycles: Counter = Counter()
    for (key, rate), nbytes in lane_bytes.items():
        cycles[key] += 0.0 if math.isinf(rate) else max(nbytes, 0.0) / rate
    return cycles


def busiest_port(lane_bytes: Counter) -> int:
    """Whole cycles of the busiest port (the bandwidth side of the roofline bound)."""
    return max((math.ceil(c - 1e-9) for c in port_cycles(lane_bytes).values()), default=0)


def pipeline_latency(first_load: int, compute: int, rest_bytes: Counter, last_store: int,
                     double_buffered: bool) -> int:
    """Latency of a double-buffered tile pipeline: the first tile's loads, then compute
    overlapped with every other transfer (``rest_bytes`` per lane, each port at its rates), then
    the last write-back. Exact when every transfer hides under compute; a lower estimate when
    ports contend."""
    rest = list(port_cycles(rest_bytes).values())
    middle = max([compute] + rest) if double_buffered else compute + sum(rest)
    return first_load + math.ceil(middle - 1e-9) + last_store


def boundary_reps(mapping: Mapping, view: MatmulView, b: int) -> dict[str, int]:
    """Per role, how many times its whole tensor crosses boundary b (see the module docstring)."""
    loops = boundary_loops(mapping, b)
    reps = {}
    for role in ROLES:
        rel = set(view.ranks_of(role))
        inner = max((i for i, (r, t) in enumerate(loops) if r in rel and t > 1), default=-1)
        reps[role] = prod(t for r, t in loops[: inner + 1] if r not in rel)
    return reps


def _compute_part(view: MatmulView, unit, innermost, chain: dict[str, list[int]], clock: float,
                  memo: dict | None = None):
    """(compute cycles, stall-free cycles, MACs, array-side words by (role, direction)) of every
    compute tile, grouped by shape. It depends on the tiles only, not on the loop order.

    A tile "continues" a partial sum unless it is the first k-tile (index 0 on every k rank,
    hence the full-size k tile) of its output tile. ``memo`` (one per view, unit and memory)
    keeps each tile shape's duration and array accesses for callers scoring many tilings."""
    ranks = view.ranks
    counts = {r: tile_size_counts(view.sizes[r], chain[r]) for r in ranks}
    first_k = {r: chain[r][-1] for r in view.groups["k"]}
    compute = stall_free = macs = 0
    array_words: Counter = Counter()
    for combo in product(*(sorted(counts[r].items()) for r in ranks)):
        tile = {r: s for r, (s, _) in zip(ranks, combo)}
        count = prod(c for _, c in combo)
        k_count = prod(counts[r][tile[r]] for r in view.groups["k"])
        n_first = count // k_count if all(tile[r] == first_k[r] for r in first_k) else 0
        dims = view.dims(tile)
        macs += count * prod(dims)
        for continues, n in ((False, n_first), (True, count - n_first)):
            if n == 0:
                continue
            key = ("tile", dims, continues)
            if memo is None or key not in memo:
                shape = (tile_duration(view, unit, innermost, dims, continues, clock),
                         array_accesses(unit.dataflow, unit.rows, unit.cols, *dims[1:], continues))
                if memo is None:
                    memo = {}
                memo[key] = shape
            (dur, base), acc = memo[key]
            compute += n * dur
            stall_free += n * base
            for role, direction, words in (("input", "read", acc.input_reads), ("weight", "read", acc.weight_reads),
                                           ("output", "read", acc.output_reads), ("output", "write", acc.output_writes)):
                array_words[(role, direction)] += n * dims[0] * words
    return compute, stall_free, macs, array_words


def evaluate(view: MatmulView, mapping: Mapping, arch, memo: dict | None = None) -> Cost:
    """Latency, energy and traffic of ``mapping`` (assumed valid: see check_mapping).

    ``memo``, shared across calls for the same view and architecture, keeps the per-tile part so
    a mapper trying many loop orders for one tile computes it once."""
    unit = arch.unit(mapping.unit)
    clock = arch.clock_hz(unit)
    mems = arch.memories
    depth = len(mems)
    ranks = view.ranks
    chain = {r: [mapping.levels[j].tile[r] for j in range(1, depth)] for r in ranks}
    full = {role: prod(view.sizes[r] for r in view.ranks_of(role)) * view.elem_bytes[role] for role in ROLES}
    traffic = {m.name: {view.tensors[role]: {"read": 0.0, "write": 0.0} for role in ROLES} for m in mems}
    port_bytes: Counter = Counter()  # boundary bytes per lane: (outer memory's port, rate)
    crossing: Counter = Counter()  # bytes over each boundary, for link energy

    def move(role: str, src, dst, nbytes: float, direction: str) -> None:
        """Account a boundary transfer between ``src`` (outer) and ``dst`` (inner)."""
        if nbytes <= 0:
            return
        t = view.tensors[role]
        outer, inner = (src, dst) if direction == "read" else (dst, src)
        traffic[outer.name][t][direction] += nbytes
        traffic[inner.name][t]["write" if direction == "read" else "read"] += nbytes
        port_bytes[port_rate(arch, outer, role, direction, clock, inner.name, memo)] += nbytes
        crossing[(outer.name, inner.name)] += nbytes

    # src[role][b]: the kept level a that role's tiles at kept level b cross from (b - 1 without bypass)
    src = mapping.sources()
    for b in range(1, depth):
        reps = boundary_reps(mapping, view, b)
        inner = mems[b]
        for role in ("input", "weight"):
            if b in src[role]:
                move(role, mems[src[role][b]], inner, reps[role] * full[role], "read")
        if b in src["output"]:
            outer = mems[src["output"][b]]
            move("output", outer, inner, (reps["output"] - 1) * full["output"], "read")
            move("output", inner, outer, reps["output"] * full["output"], "write")

    innermost = mems[-1]
    key = tuple(tuple(chain[r]) for r in ranks)
    if memo is None or key not in memo:
        part = _compute_part(view, unit, innermost, chain, clock)
        if memo is not None:
            memo[key] = part
    compute, stall_free, macs, array_words = part if memo is None else memo[key]
    array_port_bytes: Counter = Counter()
    for (role, direction), words in array_words.items():
        nbytes = words * view.elem_bytes[role]
        traffic[innermost.name][view.tensors[role]][direction] += nbytes
        array_port_bytes[port_rate(arch, innermost, role, direction, clock, None, memo)] += nbytes
    busiest = busiest_port(port_bytes + array_port_bytes)
    bound = max(math.ceil(macs / (unit.rows * unit.cols)), busiest)

    # Latency: first tile's loads, then compute overlapped with the remaining transfers, then
    # the last write-back chain. Exact when every transfer hides under compute. Loads into
    # level b (from each role's previous kept level) run in parallel across ports, levels in turn.
    first_load = 0
    for b in range(1, depth):
        per_port: Counter = Counter()
        for role in ("input", "weight"):
            if b not in src[role]:
                continue
            nbytes = prod(chain[r][b - 1] for r in view.ranks_of(role)) * view.elem_bytes[role]
            key, rate = lane = port_rate(arch, mems[src[role][b]], role, "read", clock, mems[b].name, memo)
            per_port[key] += transfer_cycles(nbytes, rate)
            port_bytes[lane] -= nbytes
        first_load += max(per_port.values(), default=0)
    last_store = 0
    for a, b in reversed(mapping.kept_pairs("output")):
        nbytes = prod(last_tile_size(view.sizes[r], chain[r][:b]) for r in view.ranks_of("output")) * view.elem_bytes["output"]
        lane = port_rate(arch, mems[a], "output", "write", clock, mems[b].name, memo)
        last_store += transfer_cycles(nbytes, lane[1])
        port_bytes[lane] -= nbytes
    latency = pipeline_latency(first_load, compute, port_bytes, last_store, innermost.double_buffered)

    energy = energy_breakdown(arch, unit, traffic, crossing, {"mac": macs})
    return Cost(latency, compute, stall_free, macs, traffic, energy, bound)


def energy_breakdown(arch, unit, traffic: dict, crossing: dict, ops: dict[str, int]) -> dict[str, float]:
    """Energy by component and action from bytes moved and ops executed (unit op -> count)."""
    out: dict[str, float] = {}
    for mem in arch.memories:
        word_bytes = mem.word_bits / 8
        reads = sum(d["read"] for d in traffic[mem.name].values()) / word_bytes
        writes = sum(d["write"] for d in traffic[mem.name].values()) / word_bytes
        out[f"{mem.name}.read"] = reads * mem.read_pj_per_word
        out[f"{mem.name}.write"] = writes * mem.write_pj_per_word
    for link in arch.links:
        moved = crossing.get((link.src, link.dst), 0.0) + crossing.get((link.dst, link.src), 0.0)
        out[f"{link.name}.transfer"] = moved * (8 * link.energy.pj if link.energy.per_bit else link.energy.pj)
    for op, count in sorted(ops.items()):
        out[f"{unit.name}.{op}"] = count * unit.op_cost(op)[1]
    return out
