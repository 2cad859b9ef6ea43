"""Command-level simulation of one DRAM channel, with the PIM commands of AiM and HBM-PIM.

One channel is simulated: all its pseudo channels, ranks, bank groups and banks, its command
bus and its data buses. Channels are independent and identical (own command bus, own banks,
own data pins), so a device's numbers are one channel's times ``organization.channels``; the
sweeps and tests use that symmetry instead of simulating every channel.

Each bank is a small state machine (closed, or open on one row). Every command is issued at
the earliest cycle all timing constraints allow; the engine keeps, per bank, the earliest
cycle of each next command and bumps those on every issue (the way Ramulator and DRAMsim3
do), so it jumps from one issue to the next instead of ticking every cycle.

Commands: ACT, PRE, PREA (all banks of a rank), RD, WR, REF (all-bank), REFpb (one bank) and
the PIM commands ACTab (the same row in every bank of a rank), MACab (every PIM unit of a rank
reads one column and multiply-accumulates it with the global buffer), MACsb (one bank's unit),
WRgb (one burst over the data bus into the global buffer), RDmac (one burst of MAC results out
over the data bus) and PREab (PREA by its PIM name).

The timing rules, previous -> next command (same bank unless said), in tCK cycles:

==========  =========================================  ===================================
name        pair                                       cycles
==========  =========================================  ===================================
tRC         ACT -> ACT, REF, REFpb                      nRC
tRAS        ACT -> PRE                                  nRAS
tRCD        ACT -> RD / WR                              nRCDRD / nRCDWR
tRCDMAC     ACT -> MACsb, MACab                         nRCDMAC
tRP         PRE -> ACT, REF, REFpb                      nRP
tRTP        RD, MAC -> PRE                              nRTP
tWR         WR -> PRE                                   nCWL + nBL + nWR
tRFC        REF -> ACT, REF, REFpb                      nRFC
tRFCpb      REFpb -> ACT, REF, REFpb                    nRFCpb
tRREFD      REFpb -> ACT, REFpb (other bank, rank)      nRREFD
tRRD_S/L    ACT -> ACT (rank / bank group)              nRRDS / nRRDL; ACT -> REFpb nRRDS
tFAW        at most 4 ACTs in any nFAW window (rank)    nFAW
tCCD_S/L    RD, MAC -> RD, MAC; WR -> WR (rank / BG)    nCCDS / nCCDL (WR: nCCDS_WR / nCCDL_WR)
tWTR_S/L    WR -> RD, MAC (rank / bank group)           nCWL + nBL + nWTRS / nWTRL
tRTW        RD, MAC -> WR, WRgb (pseudo channel)        nRTW
tPPD        PRE -> PRE (rank)                           nPPD
tCCDAB      MACab -> MACab (rank)                       nCCDAB
tGB         WRgb -> MACsb, MACab (pseudo channel)       nCWLGB + nBL (the buffer is written)
data bus    bursts of nBL on one pseudo channel's pins never overlap; nRTRS between ranks
cmd bus     one command per cycle (HBM: one row and one column command per cycle)
==========  =========================================  ===================================

"MAC" is MACsb and MACab; all-bank commands (PREA, REF, ACTab, MACab, PREab) act on every bank
of their rank, so they meet every bank's and every bank group's constraints. ACTab counts as
one ACT for tRRD and tFAW. ``sim.dram.checker`` checks a trace against the same table with an
independent implementation.

Two entry points: :func:`run_requests` (a FR-FCFS memory controller for read and write
requests) and :func:`run_program` (an in-order list of commands, for PIM kernels).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from arch.dram import DramSpec, load_dram

ROW_COMMANDS = frozenset({"ACT", "PRE", "PREA", "REF", "REFpb", "ACTab", "PREab"})
COLUMN_COMMANDS = frozenset({"RD", "WR", "MACab", "MACsb", "WRgb", "RDmac"})
PIM_COMMANDS = frozenset({"ACTab", "MACab", "MACsb", "WRgb", "RDmac", "PREab"})
KINDS = ROW_COMMANDS | COLUMN_COMMANDS
RANK_COMMANDS = frozenset({"PREA", "REF", "ACTab", "MACab", "PREab"})  # every bank of the rank
BUS_COMMANDS = frozenset({"WRgb", "RDmac"})  # data bus only, no bank
DEFAULT_MAPPING = "RoRaBaCoBgPc"


class DramError(ValueError):
    """An illegal program (a RD to a closed bank, an unknown command) or bad arguments."""


@dataclass(frozen=True)
class Command:
    """One DRAM command at ``cycle`` (tCK cycles from 0). Bank commands name their bank;
    all-bank commands only their pseudo channel and rank; ``row``/``col`` where they apply.
    In a program given to :func:`run_program`, ``cycle`` is the earliest cycle it may issue."""

    cycle: int
    kind: str
    pch: int = 0
    rank: int = 0
    bankgroup: int = 0
    bank: int = 0
    row: int | None = None
    col: int | None = None


@dataclass(frozen=True)
class Request:
    """A read or write of one burst at byte ``address`` (channel-local), available from cycle ``arrival``."""

    address: int
    write: bool = False
    arrival: int = 0


@dataclass(frozen=True)
class Location:
    """Where an address lies in the channel."""

    pch: int
    rank: int
    bankgroup: int
    bank: int
    row: int
    col: int


@dataclass(frozen=True)
class DramRun:
    """What a run did: the command trace, its length, the bytes the data buses moved, the
    requests' row-buffer outcomes, the columns PIM units read and the energy (None if a needed
    energy is unknown; ``energy_unknown`` names what is missing; ``energy_breakdown_pj`` holds
    the known parts by command kind, plus ``background``)."""

    spec_name: str
    tck_ps: float
    commands: tuple[Command, ...]
    cycles: int
    seconds: float
    bytes: int
    row_hits: int
    row_misses: int
    row_conflicts: int
    mac_columns: int
    energy_pj: float | None
    energy_breakdown_pj: dict[str, float] = field(hash=False)
    energy_unknown: tuple[str, ...] = ()

    @property
    def bandwidth(self) -> float:
        """Bytes per second over the data buses of the channel during the run."""
        return self.bytes / self.seconds if self.seconds else 0.0

    def count(self, kind: str) -> int:
        return sum(1 for c in self.commands if c.kind == kind)


class AddressMap:
    """Byte addresses to channel locations by a field-order string, most significant field
    first: ``Ro`` row, ``Ra`` rank, ``Ba`` bank in group, ``Bg`` bank group, ``Pc`` pseudo
    channel, ``Co`` column (burst), ``Ch`` channel (a single channel: zero bits). The bits below
    the burst size are the offset within a burst. Every field the device has more than one of
    must appear; all sizes must be powers of two.

    The default ``RoRaBaCoBgPc`` spreads consecutive bursts over pseudo channels and bank groups
    first, so a sequential stream alternates bank groups (tCCD_S instead of tCCD_L)."""

    def __init__(self, spec: DramSpec, mapping: str = DEFAULT_MAPPING) -> None:
        org = spec.organization
        sizes = {"Ro": org.rows, "Ra": org.ranks, "Ba": org.banks_per_group, "Bg": org.bankgroups,
                 "Pc": org.pseudo_channels, "Co": org.columns, "Ch": 1}
        tokens = [mapping[i:i + 2] for i in range(0, len(mapping), 2)]
        if len(mapping) % 2 or any(t not in sizes for t in tokens) or len(set(tokens)) != len(tokens):
            raise DramError(f"bad address mapping '{mapping}': use each of {', '.join(sizes)} at most once, "
                            "e.g. 'RoBaBgCoCh'")
        missing = [f for f, n in sizes.items() if n > 1 and f not in tokens]
        if missing:
            raise DramError(f"address mapping '{mapping}' lacks {', '.join(missing)} "
                            f"('{spec.name}' has more than one of each)")
        for name, n in sizes.items():
            if n & (n - 1):
                raise DramError(f"'{spec.name}': {name} count {n} is not a power of two; cannot map addresses by bits")
        if org.column_bytes & (org.column_bytes - 1):
            raise DramError(f"'{spec.name}': column_bytes {org.column_bytes} is not a power of two")
        self.offset_bits = org.column_bytes.bit_length() - 1
        self.fields: list[tuple[str, int, int]] = []  # (name, shift, size), least significant first
        shift = self.offset_bits
        for name in reversed(tokens):
            self.fields.append((name, shift, sizes[name]))
            shift += sizes[name].bit_length() - 1
        self.capacity = 1 << shift

    def decode(self, address: int) -> Location:
        v = {name: (address >> shift) & (size - 1) for name, shift, size in self.fields}
        return Location(v.get("Pc", 0), v.get("Ra", 0), v.get("Bg", 0), v.get("Ba", 0), v.get("Ro", 0), v.get("Co", 0))

    def encode(self, *, pch: int = 0, rank: int = 0, bankgroup: int = 0, bank: int = 0, row: int = 0, col: int = 0) -> int:
        value = {"Pc": pch, "Ra": rank, "Bg": bankgroup, "Ba": bank, "Ro": row, "Co": col, "Ch": 0}
        address = 0
        for name, shift, size in self.fields:
            if not 0 <= value[name] < size:
                raise DramError(f"{name} {value[name]} out of range 0..{size - 1}")
            address |= value[name] << shift
        return address


class _Channel:
    """The state of one channel: per-bank earliest cycles of each next command, open rows,
    tFAW windows, data-bus bursts and command-bus slots. ``issue`` applies a command's effects."""

    def __init__(self, spec: DramSpec) -> None:
        self.spec = spec
        self.t = spec.cycles()
        org = spec.organization
        self.P, self.R, self.G, self.B = org.pseudo_channels, org.ranks, org.bankgroups, org.banks_per_group
        self.per_rank = self.G * self.B
        n = self.P * self.R * self.per_rank
        self.ready = {k: [0] * n for k in ("ACT", "PRE", "RD", "WR", "MAC", "REFpb", "REF")}
        self.open_row: list[int | None] = [None] * n
        self.faw = [deque(maxlen=4) for _ in range(self.P * self.R)]
        self.macab_ready = [0] * (self.P * self.R)
        self.rtw = [0] * self.P
        self.gb_ready = [0] * self.P
        self.bursts: list[list[tuple[int, int, int]]] = [[] for _ in range(self.P)]  # (start, end, rank)
        self.split_bus = org.command_bus == "row-column"
        self.bus_free = [0, 0]
        self.units_per_rank = self.per_rank // spec.pim.banks_per_unit if spec.pim else 0
        self.commands: list[Command] = []
        self.now = 0
        self.end = 0
        self.bytes = 0
        self.mac_columns = 0

    # ---- geometry -------------------------------------------------------------------------
    def rank_key(self, pch: int, rank: int) -> int:
        return pch * self.R + rank

    def bank_id(self, pch: int, rank: int, bg: int, bank: int) -> int:
        return (self.rank_key(pch, rank) * self.G + bg) * self.B + bank

    def rank_banks(self, rk: int) -> range:
        return range(rk * self.per_rank, (rk + 1) * self.per_rank)

    def group_banks(self, b: int) -> range:
        first = b - b % self.B
        return range(first, first + self.B)

    def check_where(self, c: Command) -> None:
        ok = 0 <= c.pch < self.P and 0 <= c.rank < self.R and 0 <= c.bankgroup < self.G and 0 <= c.bank < self.B
        if not ok:
            raise DramError(f"{c.kind} at pch {c.pch} rank {c.rank} bank group {c.bankgroup} bank {c.bank}: "
                            f"'{self.spec.name}' has {self.P} pseudo channels, {self.R} ranks, {self.G} bank groups, "
                            f"{self.B} banks per group")
        if c.kind in PIM_COMMANDS and self.spec.pim is None:
            raise DramError(f"{c.kind} needs PIM units; '{self.spec.name}' has none")
        if c.kind not in KINDS:
            raise DramError(f"unknown DRAM command '{c.kind}'; known: {', '.join(sorted(KINDS))}")

    # ---- when can a command issue? --------------------------------------------------------
    def _faw_bound(self, rk: int) -> int:
        window = self.faw[rk]
        return window[0] + self.t.FAW if len(window) == 4 else 0

    def _data_latency(self, kind: str) -> int:
        t = self.t
        return {"RD": t.CL, "WR": t.CWL, "WRgb": t.CWLGB, "RDmac": t.CLREG}[kind]

    def _bus_slot(self, pch: int, rank: int, cycle: int, latency: int) -> int:
        """The first cycle >= ``cycle`` whose burst, ``latency`` later, overlaps no other burst."""
        start = cycle + latency
        moved = True
        while moved:
            moved = False
            for s, e, r in self.bursts[pch]:
                gap = self.t.RTRS if r != rank else 0
                if start < e + gap and start + self.t.BL + gap > s:
                    start, moved = e + gap, True
        return start - latency

    def earliest(self, kind: str, pch: int = 0, rank: int = 0, bg: int = 0, bank: int = 0) -> int:
        """The earliest cycle (not before now) at which ``kind`` may issue there."""
        rk = self.rank_key(pch, rank)
        ready = self.ready
        if kind in RANK_COMMANDS:
            banks = self.rank_banks(rk)
            key = {"PREA": "PRE", "PREab": "PRE", "REF": "REF", "ACTab": "ACT", "MACab": "MAC"}[kind]
            c = max(ready[key][b] for b in banks)
            if kind == "ACTab":
                c = max(c, self._faw_bound(rk))
            elif kind == "MACab":
                c = max(c, self.macab_ready[rk], self.gb_ready[pch])
        elif kind in BUS_COMMANDS:
            c = self.rtw[pch] if kind == "WRgb" else 0
        else:
            b = self.bank_id(pch, rank, bg, bank)
            c = ready["MAC" if kind == "MACsb" else kind][b]
            if kind == "ACT":
                c = max(c, self._faw_bound(rk))
            elif kind == "WR":
                c = max(c, self.rtw[pch])
            elif kind == "MACsb":
                c = max(c, self.gb_ready[pch])
        c = max(c, self.now, self.bus_free[self._bus(kind)])
        if kind in ("RD", "WR", "WRgb", "RDmac"):
            c = self._bus_slot(pch, rank, c, self._data_latency(kind))
        return c

    def _bus(self, kind: str) -> int:
        return 1 if self.split_bus and kind in COLUMN_COMMANDS else 0

    # ---- issuing --------------------------------------------------------------------------
    @staticmethod
    def _bump(arr: list[int], banks: Iterable[int], value: int) -> None:
        for b in banks:
            if arr[b] < value:
                arr[b] = value

    def issue(self, kind: str, cycle: int, pch: int = 0, rank: int = 0, bg: int = 0, bank: int = 0,
              row: int | None = None, col: int | None = None) -> Command:
        """Record ``kind`` at ``cycle`` (which the caller got from ``earliest``) and apply its effects."""
        t, ready = self.t, self.ready
        rk = self.rank_key(pch, rank)
        rank_banks = self.rank_banks(rk)
        b = self.bank_id(pch, rank, bg, bank)
        end = cycle + 1
        if kind in ("ACT", "ACTab"):
            opened = rank_banks if kind == "ACTab" else (b,)
            for x in opened:
                self.open_row[x] = row
            self._bump(ready["ACT"], opened, cycle + t.RC)
            self._bump(ready["REF"], opened, cycle + t.RC)
            self._bump(ready["REFpb"], opened, cycle + t.RC)
            self._bump(ready["PRE"], opened, cycle + t.RAS)
            self._bump(ready["RD"], opened, cycle + t.RCDRD)
            self._bump(ready["WR"], opened, cycle + t.RCDWR)
            self._bump(ready["MAC"], opened, cycle + (t.RCDMAC if t.RCDMAC is not None else t.RCDRD))
            self._bump(ready["ACT"], rank_banks, cycle + t.RRDS)
            self._bump(ready["REFpb"], rank_banks, cycle + t.RRDS)
            groups = rank_banks if kind == "ACTab" else self.group_banks(b)
            self._bump(ready["ACT"], groups, cycle + t.RRDL)
            self.faw[rk].append(cycle)
        elif kind in ("PRE", "PREA", "PREab"):
            closed = (b,) if kind == "PRE" else rank_banks
            for x in closed:
                self.open_row[x] = None
            for key in ("ACT", "REF", "REFpb"):
                self._bump(ready[key], closed, cycle + t.RP)
            if t.PPD:
                self._bump(ready["PRE"], rank_banks, cycle + t.PPD)
        elif kind in ("RD", "MACsb", "MACab"):
            same = rank_banks if kind == "MACab" else (b,)
            self._bump(ready["PRE"], same, cycle + t.RTP)
            groups = rank_banks if kind == "MACab" else self.group_banks(b)
            for key in ("RD", "MAC"):
                self._bump(ready[key], rank_banks, cycle + t.CCDS)
                self._bump(ready[key], groups, cycle + t.CCDL)
            self.rtw[pch] = max(self.rtw[pch], cycle + t.RTW)
            if kind == "RD":
                end = self._add_burst(pch, rank, cycle + t.CL)
            elif kind == "MACsb":
                self.mac_columns += 1
            else:
                self.macab_ready[rk] = cycle + t.CCDAB
                self.mac_columns += self.units_per_rank
        elif kind == "WR":
            self._bump(ready["PRE"], (b,), cycle + t.write_to_precharge)
            self._bump(ready["WR"], rank_banks, cycle + t.CCDS_WR)
            self._bump(ready["WR"], self.group_banks(b), cycle + t.CCDL_WR)
            for key in ("RD", "MAC"):
                self._bump(ready[key], rank_banks, cycle + t.CWL + t.BL + t.WTRS)
                self._bump(ready[key], self.group_banks(b), cycle + t.CWL + t.BL + t.WTRL)
            end = self._add_burst(pch, rank, cycle + t.CWL)
        elif kind == "REF":
            for key in ("ACT", "REF", "REFpb"):
                self._bump(ready[key], rank_banks, cycle + t.RFC)
        elif kind == "REFpb":
            for key in ("ACT", "REF", "REFpb"):
                self._bump(ready[key], (b,), cycle + t.RFCpb)
            self._bump(ready["ACT"], rank_banks, cycle + t.RREFD)
            self._bump(ready["REFpb"], rank_banks, cycle + t.RREFD)
        elif kind == "WRgb":
            end = self._add_burst(pch, rank, cycle + t.CWLGB)
            self.gb_ready[pch] = max(self.gb_ready[pch], end)
        elif kind == "RDmac":
            end = self._add_burst(pch, rank, cycle + t.CLREG)
        self.bus_free[self._bus(kind)] = cycle + 1
        self.now = cycle
        self.end = max(self.end, end)
        command = Command(cycle, kind, pch, rank, bg, bank, row, col)
        self.commands.append(command)
        return command

    def _add_burst(self, pch: int, rank: int, start: int) -> int:
        """Put one burst on ``pch``'s data bus from ``start``; drop bursts that can no longer collide."""
        end = start + self.t.BL
        horizon = self.now - self.t.RTRS
        self.bursts[pch] = [x for x in self.bursts[pch] if x[1] > horizon] + [(start, end, rank)]
        self.bytes += self.spec.organization.column_bytes
        return end

    def is_open(self, pch: int, rank: int, bg: int, bank: int) -> bool:
        return self.open_row[self.bank_id(pch, rank, bg, bank)] is not None


# ---- requests: a FR-FCFS controller ---------------------------------------------------------

@dataclass
class _Pending:
    index: int
    write: bool
    arrival: int
    where: Location
    bank: int  # flat bank id
    outcome: str = "hit"  # becomes "miss" when an ACT is issued for it, "conflict" for a PRE


def run_requests(spec: DramSpec | str, requests: Iterable[Request | tuple[int, bool] | int], *,
                 page_policy: Literal["open", "closed"] = "open", mapping: str = DEFAULT_MAPPING,
                 refresh: bool | Literal["all-bank", "per-bank"] = True, queue_depth: int | None = None) -> DramRun:
    """Serve ``requests`` (Request, (address, is_write) or a read address) with a FR-FCFS
    controller: among the first ``queue_depth`` waiting requests, row hits go first, then the
    oldest; each command issues at the earliest legal cycle. ``queue_depth`` defaults to 32 per
    pseudo channel (DRAMsim3 and Ramulator queue 32 requests per channel; here the pseudo
    channels share one controller).

    ``page_policy`` "open" leaves a row open until a request needs another row; "closed"
    precharges a bank as soon as no waiting request hits its open row. ``refresh`` True uses
    per-bank refresh (REFpb, one bank per tREFI/banks, preferring idle banks) where the device
    has it and all-bank REF every tREFI otherwise; "all-bank"/"per-bank" choose; False: none."""
    spec = load_dram(spec)
    if page_policy not in ("open", "closed"):
        raise DramError(f"page_policy must be 'open' or 'closed', got {page_policy!r}")
    amap = AddressMap(spec, mapping)
    ch = _Channel(spec)
    queue_depth = queue_depth or 32 * ch.P
    pending_all = []
    for i, r in enumerate(requests):
        req = r if isinstance(r, Request) else Request(r) if isinstance(r, int) else Request(r[0], bool(r[1]))
        where = amap.decode(req.address)
        pending_all.append(_Pending(i, req.write, req.arrival, where,
                                    ch.bank_id(where.pch, where.rank, where.bankgroup, where.bank)))
    pending_all.sort(key=lambda p: (p.arrival, p.index))
    refresher = _Refresher(ch, refresh)
    window: list[_Pending] = []
    next_in = 0
    hits = misses = conflicts = 0
    n = len(pending_all)
    served = 0
    while served < n:
        while next_in < n and len(window) < queue_depth and pending_all[next_in].arrival <= ch.now:
            window.append(pending_all[next_in])
            next_in += 1
        candidates = refresher.candidates() + _request_candidates(ch, window, page_policy, refresher)
        best = None
        for cand in candidates:
            cycle = ch.earliest(cand[2], *cand[3:7])
            key = (cycle, cand[0], cand[1])
            if best is None or key < best[0]:
                best = (key, cand)
        t_min = best[0][0] if best else math.inf
        t_arrive = pending_all[next_in].arrival if next_in < n and len(window) < queue_depth else math.inf
        t_due = refresher.next_due()
        if t_due <= min(t_min, t_arrive) and t_due != math.inf:
            ch.now = max(ch.now, math.ceil(t_due))
            refresher.make_pending(window)
            continue
        if t_arrive < t_min:
            ch.now = max(ch.now, t_arrive)
            continue
        if best is None:
            raise DramError("the controller is stuck: no command can issue")  # cannot happen
        (cycle, _, _), (_, _, kind, pch, rank, bg, bank, row, col, req) = best
        ch.issue(kind, cycle, pch, rank, bg, bank, row, col)
        refresher.issued(kind, pch, rank, bg, bank)
        if req is not None:
            if kind == "ACT":
                req.outcome = "conflict" if req.outcome == "conflict" else "miss"
            elif kind == "PRE":
                req.outcome = "conflict"
            else:  # RD or WR: served
                window.remove(req)
                served += 1
                hits += req.outcome == "hit"
                misses += req.outcome == "miss"
                conflicts += req.outcome == "conflict"
    return _finish(spec, ch, hits, misses, conflicts)


def _request_candidates(ch: _Channel, window: list[_Pending], policy: str, refresher: _Refresher) -> list[tuple]:
    """The next command of every bank with waiting requests, FR-FCFS style, as tuples
    (class, age, kind, pch, rank, bg, bank, row, col, request); class 0 = row hit."""
    by_bank: dict[int, list[_Pending]] = {}
    for p in window:
        by_bank.setdefault(p.bank, []).append(p)
    out = []
    for b, reqs in by_bank.items():
        if refresher.blocks(b):
            continue
        w = reqs[0].where
        open_row = ch.open_row[b]
        if open_row is not None:
            hit = next((p for p in reqs if p.where.row == open_row), None)
            if hit is not None:
                hw = hit.where
                out.append((0, hit.index, "WR" if hit.write else "RD", hw.pch, hw.rank, hw.bankgroup, hw.bank,
                            hw.row, hw.col, hit))
            else:
                out.append((1, reqs[0].index, "PRE", w.pch, w.rank, w.bankgroup, w.bank, None, None, reqs[0]))
        else:
            out.append((1, reqs[0].index, "ACT", w.pch, w.rank, w.bankgroup, w.bank, w.row, None, reqs[0]))
    if policy == "closed":
        wanted = {(p.bank, p.where.row) for p in window}
        for b, row in enumerate(ch.open_row):
            if row is not None and (b, row) not in wanted and not refresher.blocks(b):
                pch, rest = divmod(b, ch.R * ch.per_rank)
                rank, rest = divmod(rest, ch.per_rank)
                bg, bank = divmod(rest, ch.B)
                out.append((2, 0, "PRE", pch, rank, bg, bank, None, None, None))
    return out


class _Refresher:
    """Refresh for the request controller. All-bank: every tREFI per rank (staggered), the rank
    stops taking new commands, is precharged (PREA) and refreshed (REF). Per-bank: every
    tREFI/banks per rank one bank not yet refreshed in this round is chosen (idle banks first),
    precharged and refreshed (REFpb), so every bank is refreshed once per tREFI."""

    def __init__(self, ch: _Channel, mode: bool | str) -> None:
        self.ch = ch
        t = ch.t
        if mode is True:
            mode = "per-bank" if t.RFCpb is not None else "all-bank"
        if mode == "per-bank" and t.RFCpb is None:
            ch.spec.need("timing.nRFCpb")
        if mode not in (False, "all-bank", "per-bank"):
            raise DramError(f"refresh must be True, False, 'all-bank' or 'per-bank', got {mode!r}")
        self.mode = mode
        ranks = ch.P * ch.R
        self.interval = t.REFI if mode == "all-bank" else t.REFI / ch.per_rank
        self.due = [self.interval * (1 + k / ranks) for k in range(ranks)] if mode else []
        self.pending: dict[int, int | None] = {}  # rank key -> bank being refreshed (None: all banks)
        self.todo = [set(ch.rank_banks(rk)) for rk in range(ranks)]

    def next_due(self) -> float:
        return min((d for rk, d in enumerate(self.due) if rk not in self.pending), default=math.inf)

    def make_pending(self, window: list[_Pending]) -> None:
        """Every rank whose refresh is due now starts it."""
        for rk, d in enumerate(self.due):
            if rk in self.pending or d > self.ch.now:
                continue
            if self.mode == "all-bank":
                self.pending[rk] = None
            else:
                busy = {p.bank: 0 for p in window}
                for p in window:
                    busy[p.bank] += 1
                todo = self.todo[rk]
                self.pending[rk] = min(todo, key=lambda b: (busy.get(b, 0), self.ch.open_row[b] is not None, b))

    def blocks(self, b: int) -> bool:
        rk = b // self.ch.per_rank
        if rk not in self.pending:
            return False
        target = self.pending[rk]
        return target is None or target == b

    def candidates(self) -> list[tuple]:
        """PREA/REF or PRE/REFpb for every rank whose refresh has started (class -1: first)."""
        ch = self.ch
        out = []
        for rk, target in self.pending.items():
            pch, rank = divmod(rk, ch.R)
            if target is None:
                any_open = any(ch.open_row[b] is not None for b in ch.rank_banks(rk))
                out.append((-1, 0, "PREA" if any_open else "REF", pch, rank, 0, 0, None, None, None))
            else:
                bg, bank = divmod(target - rk * ch.per_rank, ch.B)
                kind = "PRE" if ch.open_row[target] is not None else "REFpb"
                out.append((-1, 0, kind, pch, rank, bg, bank, None, None, None))
        return out

    def issued(self, kind: str, pch: int, rank: int, bg: int, bank: int) -> None:
        if kind not in ("REF", "REFpb"):
            return
        rk = self.ch.rank_key(pch, rank)
        del self.pending[rk]
        self.due[rk] += self.interval
        if kind == "REFpb":
            self.todo[rk].discard(self.ch.bank_id(pch, rank, bg, bank))
            if not self.todo[rk]:
                self.todo[rk] = set(self.ch.rank_banks(rk))


# ---- programs: in-order command lists --------------------------------------------------------

def run_program(spec: DramSpec | str, program: Sequence[Command], *, refresh: bool = True) -> DramRun:
    """Issue ``program`` in order, each command at the earliest legal cycle (and not before its
    own ``cycle`` nor before the previous command). With ``refresh``, an all-bank REF is put
    between program commands every tREFI per rank: the rank is precharged, refreshed, and the
    rows that were open are opened again (ACTab if every bank had the same row, else ACT each),
    so the program continues as written. Illegal programs (a RD to a closed bank, an ACT to an
    open one, a MACab without every bank open) raise DramError."""
    spec = load_dram(spec)
    ch = _Channel(spec)
    due = [ch.t.REFI * (1 + k / (ch.P * ch.R)) for k in range(ch.P * ch.R)] if refresh else []
    last = 0
    for i, c in enumerate(program):
        ch.check_where(c)
        _check_state(ch, c, i)
        while True:
            cycle = max(ch.earliest(c.kind, c.pch, c.rank, c.bankgroup, c.bank), c.cycle, last)
            rk = min(range(len(due)), key=due.__getitem__, default=None)
            if rk is None or due[rk] > cycle:
                break
            ch.now = max(ch.now, math.ceil(due[rk]))
            _refresh_rank(ch, rk)
            due[rk] += ch.t.REFI
        ch.now = max(ch.now, cycle)
        cycle = max(ch.earliest(c.kind, c.pch, c.rank, c.bankgroup, c.bank), cycle)
        row = c.row
        if c.kind in ("RD", "WR", "MACsb", "MACab") and row is None:  # record the row it reads
            first = ch.bank_id(c.pch, c.rank, 0, 0) if c.kind == "MACab" else None
            row = ch.open_row[first if first is not None else ch.bank_id(c.pch, c.rank, c.bankgroup, c.bank)]
        ch.issue(c.kind, cycle, c.pch, c.rank, c.bankgroup, c.bank, row, c.col)
        last = cycle
    return _finish(spec, ch, 0, 0, 0)


def _check_state(ch: _Channel, c: Command, i: int) -> None:
    """Refuse a program command the bank state does not allow."""
    rk = ch.rank_key(c.pch, c.rank)
    where = f"program[{i}] {c.kind} (pch {c.pch}, rank {c.rank}, bank group {c.bankgroup}, bank {c.bank})"
    if c.kind in ("ACT", "RD", "WR", "MACsb", "REFpb"):
        is_open = ch.is_open(c.pch, c.rank, c.bankgroup, c.bank)
        if c.kind in ("ACT", "REFpb") and is_open:
            raise DramError(f"{where}: the bank is open; precharge it first")
        if c.kind in ("RD", "WR", "MACsb") and not is_open:
            raise DramError(f"{where}: the bank is closed; activate a row first")
        if c.kind == "ACT" and c.row is None:
            raise DramError(f"{where}: an ACT needs a row")
    elif c.kind in ("ACTab", "REF") and any(ch.open_row[b] is not None for b in ch.rank_banks(rk)):
        raise DramError(f"{where}: every bank of the rank must be closed")
    elif c.kind == "ACTab" and c.row is None:
        raise DramError(f"{where}: an ACTab needs a row")
    elif c.kind == "MACab" and any(ch.open_row[b] is None for b in ch.rank_banks(rk)):
        raise DramError(f"{where}: every bank of the rank must have its row open (ACTab)")


def _refresh_rank(ch: _Channel, rk: int) -> None:
    """PREA (if a bank is open), REF, then reopen the rows that were open."""
    pch, rank = divmod(rk, ch.R)
    banks = ch.rank_banks(rk)
    rows = {b: ch.open_row[b] for b in banks if ch.open_row[b] is not None}
    if rows:
        ch.issue("PREA", ch.earliest("PREA", pch, rank), pch, rank)
    ch.issue("REF", ch.earliest("REF", pch, rank), pch, rank)
    if rows and len(rows) == len(banks) and len(set(rows.values())) == 1 and ch.spec.pim is not None:
        row = next(iter(rows.values()))
        ch.issue("ACTab", ch.earliest("ACTab", pch, rank), pch, rank, row=row)
        return
    for b, row in rows.items():
        bg, bank = divmod(b - rk * ch.per_rank, ch.B)
        ch.issue("ACT", ch.earliest("ACT", pch, rank, bg, bank), pch, rank, bg, bank, row)


# ---- results and energy ---------------------------------------------------------------------

def _finish(spec: DramSpec, ch: _Channel, hits: int, misses: int, conflicts: int) -> DramRun:
    cycles = ch.end
    total, breakdown, unknown = command_energy(spec, ch.commands, cycles)
    return DramRun(spec.name, spec.timing.tCK_ps, tuple(ch.commands), cycles, cycles * spec.tck_s, ch.bytes,
                   hits, misses, conflicts, ch.mac_columns, total, breakdown, unknown)


def command_energy(spec: DramSpec, commands: Sequence[Command], cycles: int
                   ) -> tuple[float | None, dict[str, float], tuple[str, ...]]:
    """(total pJ or None, known parts by kind, unknown parts) of a trace: each command's count
    times its energy (ACT and ACTab per bank opened, MAC per column read by a PIM unit, WRgb and
    RDmac per burst), plus background power: act_standby_mw while some bank of a rank (all its
    pseudo channels) is open, pre_standby_mw otherwise."""
    e, org = spec.energy, spec.organization
    units = org.banks_per_rank // spec.pim.banks_per_unit if spec.pim else 0
    counts = {"ACT": 0, "RD": 0, "WR": 0, "REF": 0, "REFpb": 0, "MAC": 0, "GB": 0}
    for c in commands:
        if c.kind == "ACT":
            counts["ACT"] += 1
        elif c.kind == "ACTab":
            counts["ACT"] += org.banks_per_rank
        elif c.kind in ("RD", "WR", "REF", "REFpb"):
            counts[c.kind] += 1
        elif c.kind == "MACsb":
            counts["MAC"] += 1
        elif c.kind == "MACab":
            counts["MAC"] += units
        elif c.kind in ("WRgb", "RDmac"):
            counts["GB"] += 1
    per = {"ACT": e.act_pre_pj, "RD": e.rd_pj, "WR": e.wr_pj, "REF": e.ref_pj, "REFpb": e.refpb_pj,
           "MAC": e.mac_pj, "GB": e.gb_pj}
    breakdown, unknown = {}, []
    for kind, n in counts.items():
        if n == 0:
            continue
        if per[kind] is None:
            unknown.append(kind)
        else:
            breakdown[kind] = n * per[kind]
    if e.act_standby_mw is None or e.pre_standby_mw is None:
        unknown.append("background")
    else:
        active = _active_cycles(spec, commands, cycles)
        tck_ns = spec.timing.tCK_ps / 1000
        breakdown["background"] = (e.act_standby_mw * active + e.pre_standby_mw * (cycles * org.ranks - active)) * tck_ns
    total = None if unknown else sum(breakdown.values())
    return total, breakdown, tuple(unknown)


def _active_cycles(spec: DramSpec, commands: Sequence[Command], cycles: int) -> int:
    """Cycles, summed over ranks, during which at least one bank of the rank (any pseudo channel) is open."""
    org = spec.organization
    open_banks: dict[int, set] = {r: set() for r in range(org.ranks)}
    since: dict[int, int] = {}
    active = 0
    for c in sorted(commands, key=lambda c: c.cycle):
        banks = open_banks[c.rank]
        before = bool(banks)
        if c.kind == "ACT":
            banks.add((c.pch, c.bankgroup, c.bank))
        elif c.kind == "ACTab":
            banks.update((c.pch, g, b) for g in range(org.bankgroups) for b in range(org.banks_per_group))
        elif c.kind == "PRE":
            banks.discard((c.pch, c.bankgroup, c.bank))
        elif c.kind in ("PREA", "PREab"):
            for key in [k for k in banks if k[0] == c.pch]:
                banks.discard(key)
        if not before and banks:
            since[c.rank] = c.cycle
        elif before and not banks:
            active += c.cycle - since.pop(c.rank)
    active += sum(cycles - s for s in since.values())
    return active
