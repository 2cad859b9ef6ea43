"""Cascade-level scheduling: which consecutive Einsums are fused and which tensors stay on chip.

The model (COSMA-style inter-Einsum scheduling, mapper_design.md 6b; FLAT/FuseMax fusion)
--------------------------------------------------------------------------------------------
Input: a :class:`workloads.cascade.Cascade` in its topological order (``cascade.einsums``) and
an Architecture whose ``memories[0]`` is DRAM and ``memories[-1]`` the one on-chip buffer of
usable capacity C (half its capacity if ``double_buffered``; unbounded if it has none).

* **Groups.** A schedule cuts the Einsum order into consecutive segments. A segment of one
  Einsum is *unfused* (rank and tile None). A longer segment needs a *fusion rank* q: a
  non-iterative rank that is a bare index (``as_rank()``) of every Einsum's output, and every
  read inside the segment of a tensor produced inside it indexes q bare at the dimension where
  the producer writes q (so tile k of the consumer needs only tile k of the producer). It runs
  tile by tile over q with tile b, a divisor of q's extent: a power of two below the extent,
  or the extent itself (one tile; then the rank is immaterial and the first candidate is named).
* **Footprint** of a fused group = Σ over the tensors it touches of the bytes of one q-tile
  slice (``ceil(bytes * b / extent(q))``) when every access of the tensor in the group indexes
  q bare at one dimension, else the tensor's full size. It must be ≤ C. An unfused Einsum has
  footprint 0 (its own tiling is the per-Einsum mapper's business).
* **DRAM traffic** of a group = Σ over tensors read in it but produced outside it of their
  bytes, read once: a tensor lacking q is held whole on chip for the whole group (the footprint
  counts it at full size), so it is not re-read per tile. Re-streaming it per tile through a
  small staging buffer (FLAT's way with K and V when they do not fit) is not modelled yet;
  plus, written once, every tensor produced in it
  that a later Einsum reads or that is a cascade output. Intermediates produced and consumed
  inside a group never leave the chip. A tensor with several producers is written by the
  group of its last producer.
* **Residency.** A tensor t with one producer (position p_t) and a reader after it (last reader
  l_t) may be kept on chip when some group boundary falls in [p_t, l_t): then its later
  groups read nothing of it from DRAM and its producer group does not write it (unless it is a
  cascade output). It holds its full size during every group that overlaps positions
  [p_t, l_t]; in such a group the footprint's own count of t is replaced by the full size:
  for every group g, footprint(g) + Σ_{resident t live in g} (bytes(t) − counted_g(t)) ≤ C.
  Otherwise it round-trips DRAM (evicted after its producer, reloaded by each reader group).
* **Latency** of a group = max(compute, DRAM) in whole cycles: compute = ⌈Σ over its Einsums of
  MACs / (rows·cols of the first 2D array) + Σ other ops × ``op_cost(op)[0]`` / lanes of the
  first vector unit (rows == 1; IR ops mapped to unit ops by mappers.vector.resolve_op)⌉, with
  the array running any op a vector unit lacks; DRAM = ⌈(read+write bytes)/bandwidth⌉ when one
  port serves both, else the max of the two directions. The bandwidth is DRAM's port rate in
  bytes per cycle of the first unit's clock, as a Fraction with denominator ≤ 10⁴ so that the
  oracle and CP-SAT do the same integer arithmetic. Total latency = Σ groups.
* **Energy** (pJ) = Σ compute energy (op counts × ``op_cost`` energy, fixed by the cascade) +
  on-chip energy of every Einsum reading its operands from and writing its result to the buffer
  once (fixed) + per DRAM byte read (DRAM read + buffer write per byte) and per DRAM byte
  written (DRAM write + buffer read per byte); per-byte energies are per word ÷ word bytes, as
  Fractions with denominator ≤ 1000. Objectives: ``latency``, ``energy``, ``edp``; latency and
  energy break ties by the other one (lexicographic), edp does not.

Solvers: :func:`exhaustive_schedule` enumerates every grouping × tile × residency subset
(the oracle, chains of a few Einsums); :func:`cpsat_schedule` solves the same model with
CP-SAT over precomputed per-segment option tables (O(n²) segments × tiles). EDP, a product,
is solved exactly by sweeping the (latency, energy) Pareto front with lexicographic solves.
Cascades with iterative ranks (1-pass attention) are not supported.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from fractions import Fraction

from mappers.cost import port_rate
from mappers.errors import MappingError
from mappers.vector import resolve_op

OBJECTIVES = ("latency", "energy", "edp")
_BIG = 1 << 50  # stands for an unbounded buffer

Group = tuple[tuple[str, ...], str | None, int | None]


@dataclass(frozen=True)
class CascadeSchedule:
    """A grouping of the Einsum order, the tensors kept on chip, and what it costs."""

    groups: tuple[Group, ...]
    resident: frozenset[str]
    latency_cycles: int
    energy_pj: float
    dram_bytes: int
    status: str = "OPTIMAL"
    bound: float | None = None  # best proven bound on the objective (same units)
    objective: str = "latency"
    solve_s: float = 0.0

    @property
    def edp(self) -> float:
        """Energy-delay product (pJ × cycles)."""
        return self.energy_pj * self.latency_cycles

    def value(self, objective: str | None = None) -> float:
        """The schedule's value of ``objective`` (its own objective by default)."""
        objective = objective or self.objective
        return {"latency": self.latency_cycles, "energy": self.energy_pj, "edp": self.edp}[objective]


@dataclass(frozen=True)
class _Option:
    """One way to run segment [s, e]: fusion rank/tile, footprint, traffic and capacity terms."""

    s: int
    e: int
    q: str | None
    b: int | None
    footprint: int
    compute: int  # whole cycles
    reads: tuple[tuple[str, int], ...]  # tensor -> DRAM bytes read (tiles included)
    writes: tuple[tuple[str, int], ...]  # tensor -> DRAM bytes written
    counted: tuple[tuple[str, int], ...]  # tensor -> bytes the footprint counts for it


def _frac(x: float, den: int) -> Fraction:
    return Fraction(x).limit_denominator(den)


class _Problem:
    """The cascade and architecture reduced to the tables both solvers use."""

    def __init__(self, cascade, arch) -> None:
        if cascade.iterative:
            raise MappingError(f"cascade {cascade.name}: iterative ranks are not supported by the fusion scheduler")
        self.cascade, self.arch = cascade, arch
        self.einsums = cascade.einsums
        self.names = tuple(e.name for e in self.einsums)
        self.pos = {n: i for i, n in enumerate(self.names)}
        self.n = len(self.names)
        dram, buf = arch.memories[0], arch.memories[-1]
        if len(arch.memories) < 2:
            raise MappingError("the fusion scheduler needs a DRAM and an on-chip buffer")
        cap = buf.capacity
        self.capacity = _BIG if cap is None else int(cap // 2 if buf.double_buffered else cap)
        array = next((u for u in arch.compute if u.rows > 1), arch.compute[0])
        vector = next((u for u in arch.compute if u.rows == 1), None)
        clock = arch.clocks[arch.compute[0].clock]
        rk, rrate = port_rate(arch, dram, "input", "read", clock, peer=buf.name)
        wk, wrate = port_rate(arch, dram, "output", "write", clock, peer=buf.name)
        self.shared_port = rk == wk
        self.rbw = None if math.isinf(rrate) else _frac(rrate, 10**4)
        self.wbw = None if math.isinf(wrate) else _frac(wrate, 10**4)

        def per_byte(mem, pj: float) -> Fraction:
            return _frac(pj / (mem.word_bits / 8), 1000)

        self.w_read = per_byte(dram, dram.read_pj_per_word) + per_byte(buf, buf.write_pj_per_word)
        self.w_write = per_byte(dram, dram.write_pj_per_word) + per_byte(buf, buf.read_pj_per_word)
        self.scale = math.lcm(self.w_read.denominator, self.w_write.denominator)
        self.wr_int = int(self.w_read * self.scale)
        self.ww_int = int(self.w_write * self.scale)

        # Compute cycles and energy per Einsum.
        self.cycles: list[Fraction] = []
        const = Fraction(0)
        for e in self.einsums:
            cyc, en = Fraction(0), Fraction(0)
            for op, count in cascade.einsum_op_counts(e).items():
                if op == "mac" and "mac" in array.ops:
                    unit = array
                    name = "mac"
                elif vector is not None and _has(vector, op):
                    unit, name = vector, resolve_op(vector, op, e.name)
                else:
                    unit, name = array, resolve_op(array, op, e.name)
                c, pj = unit.op_cost(name)
                cyc += Fraction(count * c, unit.rows * unit.cols)
                en += count * Fraction(pj)
            self.cycles.append(cyc)
            # operands read from and result written to the buffer once per Einsum
            for a in e.inputs:
                const += cascade.tensor_bytes(a.tensor) * per_byte(buf, buf.read_pj_per_word)
            const += cascade.tensor_bytes(e.output.tensor) * per_byte(buf, buf.write_pj_per_word)
            const += en
        self.energy_const = const

        # Tensor facts.
        self.bytes = {t.name: cascade.tensor_bytes(t.name) for t in cascade.tensors}
        self.outputs = frozenset(cascade.outputs)
        prod_pos: dict[str, list[int]] = {}
        read_pos: dict[str, list[int]] = {}
        for i, e in enumerate(self.einsums):
            prod_pos.setdefault(e.output.tensor, []).append(i)
            for a in e.inputs:
                if a.tensor != e.output.tensor:
                    read_pos.setdefault(a.tensor, []).append(i)
        self.producer = {t: max(p) for t, p in prod_pos.items()}
        self.readers = {t: sorted(set(r)) for t, r in read_pos.items()}
        self.candidates: dict[str, tuple[int, int]] = {}  # resident candidate -> (p_t, l_t)
        for t, ps in prod_pos.items():
            later = [r for r in self.readers.get(t, []) if r > ps[0]]
            if len(ps) == 1 and later:
                self.candidates[t] = (ps[0], max(later))
        self._options: dict[tuple[int, int], tuple[_Option, ...]] = {}

    # --- per-segment tables -----------------------------------------------------------------

    def fusion_ranks(self, s: int, e: int) -> list[str]:
        """Ranks over which segment [s, e] may be fused (see the module docstring)."""
        seg = self.einsums[s:e + 1]
        common = None
        for ein in seg:
            bare = {x.as_rank() for x in ein.output.index} - {None}
            common = bare if common is None else common & bare
        ranks = [r for r in self.cascade.ranks if r in (common or set())]
        made = {ein.output.tensor: ein for ein in seg}
        ok = []
        for q in ranks:
            good = True
            for ein in seg:
                for a in ein.inputs:
                    prod = made.get(a.tensor)
                    if prod is None or prod is ein:
                        continue
                    dim = _bare_dim(prod.output, q)
                    if dim is None or dim >= len(a.index) or a.index[dim].as_rank() != q:
                        good = False
            if good:
                ok.append(q)
        return ok

    def options(self, s: int, e: int) -> tuple[_Option, ...]:
        """Every footprint-feasible way to run segment [s, e] as one group."""
        key = (s, e)
        if key not in self._options:
            opts = [o for o in self._make_options(s, e) if o.footprint <= self.capacity]
            self._options[key] = tuple(o for o in opts if not any(self._dominates(d, o) for d in opts if d is not o))
        return self._options[key]

    def _dominates(self, a: _Option, b: _Option) -> bool:
        """a is never worse than b: reads per tensor no larger, and needs no more capacity for any
        resident set (F_a - F_b + sum_t max(0, counted_b(t) - counted_a(t)) <= 0); ties keep the first."""
        ra, rb = dict(a.reads), dict(b.reads)
        if any(ra[t] > rb[t] for t in ra):
            return False
        ca, cb = dict(a.counted), dict(b.counted)
        slack = a.footprint - b.footprint + sum(max(0, cb.get(t, 0) - ca.get(t, 0)) for t in self.candidates)
        if slack > 0:
            return False
        same = all(ra[t] == rb[t] for t in ra) and slack == 0 and a.footprint == b.footprint
        return not same or self._order(a) < self._order(b)

    @staticmethod
    def _order(o: _Option) -> tuple:
        return (o.q or "", o.b or 0)

    def _make_options(self, s: int, e: int) -> list[_Option]:
        if s == e:
            return [self._option(s, e, None, None)]
        ranks = self.fusion_ranks(s, e)
        if not ranks:
            return []
        opts = []
        for q in ranks:
            ext = self.cascade.rank_extent(q)
            opts += [self._option(s, e, q, b) for b in _tiles(ext) if b < ext]
        ext = self.cascade.rank_extent(ranks[0])
        opts.append(self._option(s, e, ranks[0], ext))
        return opts

    def _option(self, s: int, e: int, q: str | None, b: int | None) -> _Option:
        seg = self.einsums[s:e + 1]
        ext = self.cascade.rank_extent(q) if q else 1
        accesses: dict[str, list] = {}
        for ein in seg:
            for a in (ein.output, *ein.inputs):
                accesses.setdefault(a.tensor, []).append(a)
        produced = {ein.output.tensor for ein in seg}
        reads, writes, counted = {}, {}, {}
        footprint = 0
        for t, accs in accesses.items():
            dims = {_bare_dim(a, q) if q else None for a in accs}
            has_q = q is not None and len(dims) == 1 and None not in dims
            full = self.bytes[t]
            if q is not None:
                size = min(full, math.ceil(full * b / ext)) if has_q else full
                counted[t] = size
                footprint += size
            if t in produced:
                if self.producer[t] <= e and (t in self.outputs or any(r > e for r in self.readers.get(t, []))):
                    if self.producer[t] >= s:
                        writes[t] = full
            elif any(r >= s and r <= e for r in self.readers.get(t, [])):
                reads[t] = full  # a tensor lacking q is held whole (its footprint counts it so): read once
        compute = math.ceil(sum(self.cycles[s:e + 1], Fraction(0)))
        return _Option(s, e, q, b, footprint, compute, tuple(reads.items()), tuple(writes.items()),
                       tuple(counted.items()))

    # --- costs --------------------------------------------------------------------------------

    def dram_cycles(self, rd: int, wr: int) -> int:
        """Whole cycles DRAM needs for ``rd`` bytes read and ``wr`` written."""
        if self.shared_port:
            return 0 if self.rbw is None else math.ceil((rd + wr) / self.rbw)
        r = 0 if self.rbw is None else math.ceil(rd / self.rbw)
        w = 0 if self.wbw is None else math.ceil(wr / self.wbw)
        return max(r, w)

    def traffic(self, o: _Option, resident: frozenset[str]) -> tuple[int, int]:
        """(read, write) DRAM bytes of option ``o`` given the resident tensors."""
        rd = sum(v for t, v in o.reads if t not in resident)
        wr = sum(v for t, v in o.writes if t not in resident or t in self.outputs)
        return rd, wr

    def fits(self, opts: list[_Option], resident: frozenset[str]) -> bool:
        """Capacity over time: every group's footprint plus the resident tensors live in it."""
        for o in opts:
            counted = dict(o.counted)
            need = o.footprint
            for t in resident:
                p, l = self.candidates[t]
                if o.s <= l and o.e >= p:
                    need += self.bytes[t] - counted.get(t, 0)
            if need > self.capacity:
                return False
        return True

    def crossing(self, opts: list[_Option]) -> list[str]:
        """Resident candidates whose producer and some reader fall in different groups."""
        cuts = {o.e for o in opts}
        return [t for t, (p, l) in self.candidates.items() if any(p <= c < l for c in cuts)]

    def evaluate(self, opts: list[_Option], resident: frozenset[str]) -> tuple[int, Fraction, int, int]:
        """(latency, energy pJ as a Fraction, read bytes, write bytes)."""
        lat, rd_all, wr_all = 0, 0, 0
        for o in opts:
            rd, wr = self.traffic(o, resident)
            lat += max(o.compute, self.dram_cycles(rd, wr))
            rd_all, wr_all = rd_all + rd, wr_all + wr
        energy = self.energy_const + rd_all * self.w_read + wr_all * self.w_write
        return lat, energy, rd_all, wr_all

    def decode(self, schedule: CascadeSchedule) -> list[_Option]:
        """The options a schedule's groups name; ValueError if they are not a legal grouping."""
        opts, nxt = [], 0
        for names, q, b in schedule.groups:
            idx = [self.pos[x] for x in names]
            if idx != list(range(nxt, nxt + len(idx))) or not idx:
                raise ValueError(f"group {names} is not the next consecutive run of the Einsum order")
            s, e = idx[0], idx[-1]
            match = [o for o in self._make_options(s, e) if o.q == q and o.b == b]
            if not match:
                raise ValueError(f"group {names}: no legal fusion over rank {q} with tile {b}")
            opts.append(match[0])
            nxt = e + 1
        if nxt != self.n:
            raise ValueError("the groups do not cover every Einsum")
        return opts


def _has(unit, op: str) -> bool:
    try:
        resolve_op(unit, op, "")
        return True
    except MappingError:
        return False


def _bare_dim(access, q: str | None) -> int | None:
    """The dimension of ``access`` indexed by exactly the bare rank q (first), else None."""
    for d, x in enumerate(access.index):
        if x.as_rank() == q:
            return d
    return None


def _tiles(extent: int) -> list[int]:
    """Candidate tile sizes: powers of two dividing ``extent``, and ``extent``."""
    out, b = [], 1
    while b < extent:
        if extent % b == 0:
            out.append(b)
        b *= 2
    return out + [extent]


_CACHE: dict[tuple[int, int], tuple] = {}


def _problem(cascade, arch) -> _Problem:
    """The (cached) tables of ``cascade`` on ``arch``."""
    key = (id(cascade), id(arch))
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not cascade or hit[1] is not arch:
        if len(_CACHE) > 16:
            _CACHE.clear()
        hit = _CACHE[key] = (cascade, arch, _Problem(cascade, arch))
    return hit[2]


def _schedule(p: _Problem, opts: list[_Option], resident: frozenset[str], objective: str, status: str,
              bound: float | None, solve_s: float) -> CascadeSchedule:
    lat, energy, rd, wr = p.evaluate(opts, resident)
    groups = tuple((p.names[o.s:o.e + 1], o.q, o.b) for o in opts)
    return CascadeSchedule(groups, frozenset(resident), lat, float(energy), rd + wr, status, bound, objective, solve_s)


def _key(objective: str, lat: int, energy: Fraction) -> tuple:
    if objective == "latency":
        return (lat, energy)
    if objective == "energy":
        return (energy, lat)
    return (lat * energy,)


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


# --- public API -----------------------------------------------------------------------------------


def cost_of(cascade, arch, schedule: CascadeSchedule) -> tuple[int, float, int]:
    """(latency cycles, energy pJ, DRAM bytes) of ``schedule`` under the model."""
    p = _problem(cascade, arch)
    lat, energy, rd, wr = p.evaluate(p.decode(schedule), frozenset(schedule.resident))
    return lat, float(energy), rd + wr


def feasible(cascade, arch, schedule: CascadeSchedule) -> bool:
    """True when the groups are legal, every footprint fits and the residency fits over time."""
    p = _problem(cascade, arch)
    try:
        opts = p.decode(schedule)
    except ValueError:
        return False
    resident = frozenset(schedule.resident)
    if any(o.footprint > p.capacity for o in opts):
        return False
    if not resident <= set(p.crossing(opts)):
        return False
    return p.fits(opts, resident)


def unfused_schedule(cascade, arch) -> CascadeSchedule:
    """Every Einsum alone, nothing kept on chip (the baseline)."""
    p = _problem(cascade, arch)
    opts = [p.options(i, i)[0] for i in range(p.n)]
    return _schedule(p, opts, frozenset(), "latency", "BASELINE", None, 0.0)


def exhaustive_schedule(cascade, arch, objective: str = "latency", max_evals: int = 5_000_000) -> CascadeSchedule:
    """The oracle: enumerate every grouping × tile choice × residency subset (small chains only)."""
    _check_objective(objective)
    start = time.perf_counter()
    p = _problem(cascade, arch)
    best, best_key, evals = None, None, 0
    for mask in range(1 << max(p.n - 1, 0)):
        cuts = [i for i in range(p.n - 1) if mask >> i & 1] + [p.n - 1]
        segs, s = [], 0
        for c in cuts:
            segs.append(p.options(s, c))
            s = c + 1
        if any(not o for o in segs):
            continue
        for opts in itertools.product(*segs):
            cross = p.crossing(list(opts))
            for k in range(len(cross) + 1):
                for res in itertools.combinations(cross, k):
                    evals += 1
                    if evals > max_evals:
                        raise MappingError(f"exhaustive_schedule: more than {max_evals} schedules; use cpsat_schedule")
                    resident = frozenset(res)
                    if not p.fits(list(opts), resident):
                        continue
                    lat, energy, _, _ = p.evaluate(list(opts), resident)
                    key = _key(objective, lat, energy)
                    if best_key is None or key < best_key:
                        best, best_key = (list(opts), resident), key
    assert best is not None  # all-unfused always fits
    value = float(best_key[0])
    return _schedule(p, best[0], best[1], objective, "OPTIMAL", value, time.perf_counter() - start)


def cpsat_schedule(cascade, arch, objective: str = "latency", time_limit_s: float = 60, seed: int = 0,
                   workers: int = 8, tie_break: bool = True) -> CascadeSchedule:
    """The same model in CP-SAT: segment-option booleans, residency booleans, capacity over time.

    With ``tie_break`` a latency (energy) optimum is then re-solved for least energy (latency)
    within a quarter of the time limit; the status and bound are those of the primary objective.
    A proven optimum is reported in canonical form (``_CpModel.canonical``), so reruns agree.
    """
    _check_objective(objective)
    start = time.perf_counter()
    deadline = start + time_limit_s
    p = _problem(cascade, arch)
    m = _CpModel(p)
    if objective in ("latency", "energy"):
        first, second = (m.lat, m.energy) if objective == "latency" else (m.energy, m.lat)
        st, val1, bnd1, sol = m.solve(first, deadline, seed, workers)
        status = st
        if st == "OPTIMAL" and tie_break:
            budget = min(deadline, time.perf_counter() + time_limit_s / 4)
            st2, val2, _, sol2 = m.solve(second, budget, seed, workers, cap=(first, val1), hint=sol)
            if sol2 is not None:
                sol = sol2
            if st2 == "OPTIMAL" and sol2 is not None:
                sol = m.canonical(((first, val1), (second, val2)), budget, seed) or sol
        opts, resident = m.decode(sol)
        bound = bnd1 if objective == "latency" else float(p.energy_const + Fraction(bnd1, p.scale))
        return _schedule(p, opts, resident, objective, status, bound, time.perf_counter() - start)
    # EDP: sweep the Pareto front from low energy towards low latency.
    best, best_val, best_caps, complete, lat_cap = None, None, None, False, None
    e_bound = l_bound = None
    hint = None
    while time.perf_counter() < deadline:
        cap = None if lat_cap is None else (m.lat, lat_cap)
        st, e_val, e_bnd, sol = m.solve(m.energy, deadline, seed, workers, upper=cap, hint=hint)
        if e_bound is None:
            e_bound = e_bnd
        if st == "INFEASIBLE":
            complete = True
            break
        if st != "OPTIMAL":
            break
        st2, l_val, _, sol2 = m.solve(m.lat, deadline, seed, workers, cap=(m.energy, e_val), upper=cap, hint=sol)
        sol = sol2 if sol2 is not None else sol
        opts, resident = m.decode(sol)
        lat, energy, _, _ = p.evaluate(opts, resident)
        if best_val is None or lat * energy < best_val:
            best, best_val, best_caps = (opts, resident), lat * energy, (e_val, l_val)
        if st2 != "OPTIMAL":
            break
        lat_cap, hint = lat - 1, sol
    if best is None:
        opts = [p.options(i, i)[0] for i in range(p.n)]
        best = (opts, frozenset())
    elif complete:  # the same E and L, but the canonical grouping among equals
        canon = m.canonical(((m.energy, best_caps[0]), (m.lat, best_caps[1])), deadline, seed)
        best = m.decode(canon) if canon is not None else best
    if l_bound is None:
        l_bound = m.solve(m.lat, deadline, seed, workers)[2] if not complete else None
    bound = float(best_val) if complete else (
        float(l_bound * (p.energy_const + Fraction(e_bound or 0, p.scale))) if l_bound is not None else None)
    return _schedule(p, best[0], best[1], "edp", "OPTIMAL" if complete else "FEASIBLE", bound,
                     time.perf_counter() - start)


class _CpModel:
    """The CP-SAT model over the per-segment option tables of a :class:`_Problem`."""

    def __init__(self, p: _Problem) -> None:
        from ortools.sat.python import cp_model

        self.cp_model, self.p = cp_model, p
        md = self.model = cp_model.CpModel()
        n = p.n
        self.opts: list[_Option] = [o for s in range(n) for e in range(s, n) for o in p.options(s, e)]
        self.x = [md.NewBoolVar(f"x{k}") for k in range(len(self.opts))]
        cover: list[list] = [[] for _ in range(n)]
        ends: list[list] = [[] for _ in range(n)]
        for o, v in zip(self.opts, self.x):
            for i in range(o.s, o.e + 1):
                cover[i].append(v)
            ends[o.e].append(v)
        for i in range(n):
            md.AddExactlyOne(cover[i])
        self.cut = [md.NewBoolVar(f"cut{i}") for i in range(n - 1)]
        for i in range(n - 1):  # cut after Einsum i <=> the group holding i ends at i
            md.Add(self.cut[i] == sum(ends[i]))
        self.res = {t: md.NewBoolVar(f"res_{t}") for t in p.candidates}
        for t, (a, b) in p.candidates.items():
            md.Add(self.res[t] <= sum(self.cut[a:b]))
        lat_terms, rd_terms, wr_terms = [], [], []
        for k, (o, v) in enumerate(zip(self.opts, self.x)):
            base_r = sum(b for _, b in o.reads)
            base_w = sum(b for _, b in o.writes)
            save_r = [(self.res[t], b) for t, b in o.reads if t in self.res]
            save_w = [(self.res[t], b) for t, b in o.writes if t in self.res and t not in p.outputs]
            r = md.NewIntVar(0, base_r, f"r{k}")
            w = md.NewIntVar(0, base_w, f"w{k}")
            # Linear without enforcement: with x = 0 the right side is <= 0 (a tight relaxation).
            if base_r:
                md.Add(r >= base_r * v - sum(b * rv for rv, b in save_r))
            if base_w:
                md.Add(w >= base_w * v - sum(b * rv for rv, b in save_w))
            top = max(o.compute, p.dram_cycles(base_r, base_w))
            lat = md.NewIntVar(0, top, f"l{k}")
            md.Add(lat >= o.compute * v)
            if p.shared_port and p.rbw is not None:
                md.Add(lat * p.rbw.numerator >= (r + w) * p.rbw.denominator)
            elif not p.shared_port:
                if p.rbw is not None:
                    md.Add(lat * p.rbw.numerator >= r * p.rbw.denominator)
                if p.wbw is not None:
                    md.Add(lat * p.wbw.numerator >= w * p.wbw.denominator)
            counted = dict(o.counted)
            terms = []
            for t, (a, b) in p.candidates.items():
                if o.s <= b and o.e >= a:
                    coef = p.bytes[t] - counted.get(t, 0)
                    if coef:
                        terms.append((self.res[t], coef))
            if terms and o.footprint + sum(c for _, c in terms) > p.capacity:
                md.Add(sum(c * rv for rv, c in terms) <= p.capacity - o.footprint).OnlyEnforceIf(v)
            lat_terms.append(lat)
            rd_terms.append(r)
            wr_terms.append(w)
        self.lat = sum(lat_terms)
        self.energy = p.wr_int * sum(rd_terms) + p.ww_int * sum(wr_terms)
        singles = {id(p.options(i, i)[0]) for i in range(n)}
        for o, v in zip(self.opts, self.x):  # hint: all unfused
            md.AddHint(v, 1 if id(o) in singles else 0)

    def solve(self, expr, deadline: float, seed: int, workers: int, cap=None, upper=None, hint=None):
        """Minimise ``expr`` (with ``cap``/``upper`` = (expr, max value) side constraints)."""
        cp_model = self.cp_model
        md = self.model.Clone()
        for c in (cap, upper):
            if c is not None:
                md.Add(c[0] <= c[1])
        md.Minimize(expr)
        if hint is not None:
            md.ClearHints()
            for v, val in hint:
                md.AddHint(v, val)
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.01, deadline - time.perf_counter())
        solver.parameters.random_seed = seed
        solver.parameters.num_workers = workers
        # CP-SAT's presolve (v9.15) rewrites the option booleans and loses the chain's path
        # structure: with it a BERT block's bound stalls far below the optimum for 60 s on 2
        # workers; without it the same model is proven optimal in under a second.
        solver.parameters.cp_model_presolve = False
        st = solver.Solve(md)
        name = solver.StatusName(st)
        if st not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return name, None, None, None
        sol = [(v, solver.Value(v)) for v in (*self.x, *self.cut, *self.res.values())]
        return name, int(round(solver.ObjectiveValue())), int(math.floor(solver.BestObjectiveBound() + 1e-6)), sol

    def canonical(self, caps, deadline: float, seed: int):
        """Among solutions within ``caps`` ((expr, max), (expr, max)), the one a single worker finds
        with the fewest segments and no hint: parallel workers race, so which of several equal
        optima they report depends on thread timing; this makes a seed give one answer."""
        st, _, _, sol = self.solve(sum(self.x), deadline, seed, 1, cap=caps[0], upper=caps[1])
        return sol if st == "OPTIMAL" else None

    def decode(self, sol) -> tuple[list[_Option], frozenset[str]]:
        """Chosen options in order and the resident tensors."""
        values = {v.Index(): val for v, val in sol}
        opts = sorted((o for o, v in zip(self.opts, self.x) if values[v.Index()]), key=lambda o: o.s)
        resident = frozenset(t for t, v in self.res.items() if values[v.Index()])
        return opts, resident
