"""Check a DRAM command trace against every timing and bank-state rule.

Independent of the engine on purpose: the engine computes, per bank, when the next command
may issue; this module takes the finished trace and tests the rules pair by pair, as a table
(previous kinds, next kinds, scope, cycles) read off ``sim.dram.engine``'s docstring, plus a
replay of bank states, the tFAW windows, the data-bus bursts and the command-bus slots. Each
violation is one line that starts with the rule's name, e.g.
``tRCD: RD (pch 0 rank 0 bg 1 bank 2) at cycle 20 is 13 cycles after ACT (...) at cycle 7; needs 14``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from arch.dram import DramSpec, TimingCycles, load_dram
from sim.dram.engine import Command

_ACTS = frozenset({"ACT", "ACTab"})
_PRES = frozenset({"PRE", "PREA", "PREab"})
_READS = frozenset({"RD", "MACsb", "MACab"})  # commands that read a bank's open row
_MACS = frozenset({"MACsb", "MACab"})
_ALL_BANK = frozenset({"PREA", "PREab", "REF", "ACTab", "MACab"})
_NO_BANK = frozenset({"WRgb", "RDmac"})
_PIM = frozenset({"ACTab", "MACab", "MACsb", "WRgb", "RDmac", "PREab"})
_COLUMN = frozenset({"RD", "WR", "MACab", "MACsb", "WRgb", "RDmac"})
_KNOWN = _ACTS | _PRES | _READS | _NO_BANK | {"WR", "REF", "REFpb"}


@dataclass(frozen=True)
class _Rule:
    name: str
    prev: frozenset[str]
    next: frozenset[str]
    scope: str  # bank | bankgroup | rank | other-bank | pch
    cycles: int


def _rules(t: TimingCycles) -> list[_Rule]:
    """The pairwise timing rules of the device (rules whose cycles are 0 or absent are dropped)."""
    R = _Rule
    rules = [
        R("tRC", _ACTS, _ACTS | {"REF", "REFpb"}, "bank", t.RC),
        R("tRAS", _ACTS, _PRES, "bank", t.RAS),
        R("tRCD", _ACTS, frozenset({"RD"}), "bank", t.RCDRD),
        R("tRCD", _ACTS, frozenset({"WR"}), "bank", t.RCDWR),
        R("tRP", _PRES, _ACTS | {"REF", "REFpb"}, "bank", t.RP),
        R("tRTP", _READS, _PRES, "bank", t.RTP),
        R("tWR", frozenset({"WR"}), _PRES, "bank", t.CWL + t.BL + t.WR),
        R("tRFC", frozenset({"REF"}), _ACTS | {"REF", "REFpb"}, "bank", t.RFC),
        R("tRRD_S", _ACTS, _ACTS, "rank", t.RRDS),
        R("tRRD_S", _ACTS, frozenset({"REFpb"}), "other-bank", t.RRDS),
        R("tRRD_L", _ACTS, _ACTS, "bankgroup", t.RRDL),
        R("tCCD_S", _READS, _READS, "rank", t.CCDS),
        R("tCCD_L", _READS, _READS, "bankgroup", t.CCDL),
        R("tCCD_S", frozenset({"WR"}), frozenset({"WR"}), "rank", t.CCDS_WR),
        R("tCCD_L", frozenset({"WR"}), frozenset({"WR"}), "bankgroup", t.CCDL_WR),
        R("tWTR_S", frozenset({"WR"}), _READS, "rank", t.CWL + t.BL + t.WTRS),
        R("tWTR_L", frozenset({"WR"}), _READS, "bankgroup", t.CWL + t.BL + t.WTRL),
        R("tRTW", _READS, frozenset({"WR", "WRgb"}), "pch", t.RTW),
        R("tPPD", _PRES, _PRES, "rank", t.PPD),
    ]
    if t.RFCpb is not None:
        rules.append(R("tRFCpb", frozenset({"REFpb"}), _ACTS | {"REF", "REFpb"}, "bank", t.RFCpb))
        rules.append(R("tRREFD", frozenset({"REFpb"}), _ACTS | {"REFpb"}, "other-bank", t.RREFD))
    if t.CCDAB is not None:
        rules.append(R("tRCDMAC", _ACTS, _MACS, "bank", t.RCDMAC))
        rules.append(R("tCCDAB", frozenset({"MACab"}), frozenset({"MACab"}), "rank", t.CCDAB))
        rules.append(R("tGB", frozenset({"WRgb"}), _MACS, "pch", t.CWLGB + t.BL))
    return [r for r in rules if r.cycles]


class _View:
    """A command with the banks and bank groups it touches, as sets of tuples."""

    def __init__(self, c: Command, spec: DramSpec) -> None:
        org = spec.organization
        self.c = c
        if c.kind in _ALL_BANK:
            self.banks = frozenset((c.pch, c.rank, g, b) for g in range(org.bankgroups)
                                   for b in range(org.banks_per_group))
        elif c.kind in _NO_BANK:
            self.banks = frozenset()
        else:
            self.banks = frozenset({(c.pch, c.rank, c.bankgroup, c.bank)})
        self.groups = frozenset(k[:3] for k in self.banks)

    def where(self) -> str:
        c = self.c
        if c.kind in _NO_BANK:
            return f"pch {c.pch}"
        if c.kind in _ALL_BANK:
            return f"pch {c.pch} rank {c.rank}"
        return f"pch {c.pch} rank {c.rank} bg {c.bankgroup} bank {c.bank}"


def _in_scope(scope: str, p: _View, n: _View) -> bool:
    if scope == "pch":
        return p.c.pch == n.c.pch
    same_rank = (p.c.pch, p.c.rank) == (n.c.pch, n.c.rank)
    if scope == "rank":
        return same_rank
    if scope == "bank":
        return bool(p.banks & n.banks)
    if scope == "bankgroup":
        return bool(p.groups & n.groups)
    return same_rank and not (p.banks & n.banks)  # other-bank


def check_trace(spec: DramSpec | str, commands: Sequence[Command], *, require_refresh: bool = False) -> list[str]:
    """Every rule the trace breaks, one line each (empty: the trace is legal).

    Checks each timing rule between every pair of commands it applies to, at most four ACTs in
    any tFAW window per rank, bank states (ACT only to a closed bank, RD/WR/MAC only to an open
    one and its row, REF only with the rank's banks closed, MACab only with all open), data
    bursts that never overlap on a pseudo channel (nRTRS apart between ranks), one command per
    command bus per cycle, and PIM commands only on PIM devices. With ``require_refresh`` every
    bank must be refreshed at least every 9 x tREFI (JEDEC lets 8 refreshes be postponed)."""
    spec = load_dram(spec)
    t = spec.cycles()
    org = spec.organization
    order = sorted(range(len(commands)), key=lambda i: (commands[i].cycle, i))
    views = [_View(commands[i], spec) for i in order]
    out: list[str] = []
    out += _check_fields(spec, views)
    if out:
        return out
    out += _check_states(views)
    out += _check_pairs(t, views)
    out += _check_faw(t, views)
    out += _check_data_bus(t, views)
    out += _check_command_bus(org.command_bus == "row-column", views)
    if require_refresh:
        out += _check_refresh(spec, t, views)
    return out


def _check_fields(spec: DramSpec, views: list[_View]) -> list[str]:
    org = spec.organization
    out = []
    for v in views:
        c = v.c
        if c.kind not in _KNOWN:
            out.append(f"command: unknown kind {c.kind!r} at cycle {c.cycle}")
        elif c.kind in _PIM and spec.pim is None:
            out.append(f"command: {c.kind} at cycle {c.cycle} needs PIM units; '{spec.name}' has none")
        elif not (0 <= c.pch < org.pseudo_channels and 0 <= c.rank < org.ranks
                  and 0 <= c.bankgroup < org.bankgroups and 0 <= c.bank < org.banks_per_group) or c.cycle < 0:
            out.append(f"command: {c.kind} at cycle {c.cycle} addresses {v.where()}, outside the device")
    return out


def _check_states(views: list[_View]) -> list[str]:
    """Replay bank states: open row per bank (absent: closed)."""
    rows: dict[tuple, int | None] = {}
    out = []
    for v in views:
        c = v.c
        head = f"{c.kind} ({v.where()}) at cycle {c.cycle}"
        if c.kind in _ACTS:
            busy = [k for k in v.banks if k in rows]
            if busy:
                out.append(f"state: {head} activates a bank that is open (bg {busy[0][2]} bank {busy[0][3]})")
            for k in v.banks:
                rows[k] = c.row
        elif c.kind in _PRES:
            for k in v.banks:
                rows.pop(k, None)
        elif c.kind in ("RD", "WR", "MACsb", "MACab"):
            closed = [k for k in v.banks if k not in rows]
            if closed:
                out.append(f"state: {head} needs an open row, bank (bg {closed[0][2]} bank {closed[0][3]}) is closed")
            elif c.row is not None and c.kind != "MACab" and rows[next(iter(v.banks))] not in (None, c.row):
                out.append(f"state: {head} is for row {c.row} but row {rows[next(iter(v.banks))]} is open")
        elif c.kind in ("REF", "REFpb"):
            busy = [k for k in v.banks if k in rows]
            if busy:
                out.append(f"state: {head} needs closed banks, bank (bg {busy[0][2]} bank {busy[0][3]}) is open")
    return out


def _check_pairs(t: TimingCycles, views: list[_View]) -> list[str]:
    """Each rule, for each command it can follow: the earlier commands of its kinds within its window."""
    rules = _rules(t)
    by_next: dict[str, list[_Rule]] = {}
    for r in rules:
        for k in r.next:
            by_next.setdefault(k, []).append(r)
    seen: dict[str, list[_View]] = {}
    out = []
    for n in views:
        for rule in by_next.get(n.c.kind, ()):
            for kind in rule.prev:
                for p in reversed(seen.get(kind, ())):
                    gap = n.c.cycle - p.c.cycle
                    if gap >= rule.cycles:
                        break
                    if _in_scope(rule.scope, p, n):
                        out.append(f"{rule.name}: {n.c.kind} ({n.where()}) at cycle {n.c.cycle} is {gap} cycles after "
                                   f"{p.c.kind} ({p.where()}) at cycle {p.c.cycle}; needs {rule.cycles}")
        seen.setdefault(n.c.kind, []).append(n)
    return out


def _check_faw(t: TimingCycles, views: list[_View]) -> list[str]:
    acts: dict[tuple, list[int]] = {}
    out = []
    for v in views:
        if v.c.kind not in _ACTS:
            continue
        window = acts.setdefault((v.c.pch, v.c.rank), [])
        recent = [x for x in window[-4:] if v.c.cycle - x < t.FAW]
        if len(recent) == 4:
            out.append(f"tFAW: {v.c.kind} (pch {v.c.pch} rank {v.c.rank}) at cycle {v.c.cycle} is the 5th ACT since "
                       f"cycle {recent[0]}, within {t.FAW} cycles")
        window.append(v.c.cycle)
    return out


def _check_data_bus(t: TimingCycles, views: list[_View]) -> list[str]:
    latency = {"RD": t.CL, "WR": t.CWL, "WRgb": t.CWLGB, "RDmac": t.CLREG}
    bursts: dict[int, list[tuple[int, int, _View]]] = {}
    for v in views:
        if v.c.kind in latency:
            start = v.c.cycle + latency[v.c.kind]
            bursts.setdefault(v.c.pch, []).append((start, start + t.BL, v))
    out = []
    for items in bursts.values():
        items.sort(key=lambda x: x[0])
        for i, (s, e, v) in enumerate(items):
            for ps, pe, pv in reversed(items[:i][-4:]):
                gap = t.RTRS if pv.c.rank != v.c.rank else 0
                if s < pe + gap:
                    what = "overlaps" if s < pe else f"is fewer than nRTRS {t.RTRS} cycles after"
                    out.append(f"data bus: {v.c.kind} ({v.where()}) at cycle {v.c.cycle} sends data at {s}..{e}, which "
                               f"{what} the burst of {pv.c.kind} at cycle {pv.c.cycle} ({ps}..{pe})")
    return out


def _check_command_bus(split: bool, views: list[_View]) -> list[str]:
    used: dict[tuple[int, int], _View] = {}
    out = []
    for v in views:
        slot = (v.c.cycle, 1 if split and v.c.kind in _COLUMN else 0)
        if slot in used:
            out.append(f"command bus: {v.c.kind} and {used[slot].c.kind} both issue at cycle {v.c.cycle} "
                       "on one command bus")
        used[slot] = v
    return out


def _check_refresh(spec: DramSpec, t: TimingCycles, views: list[_View]) -> list[str]:
    org = spec.organization
    last: dict[tuple, int] = {(p, r, g, b): 0 for p in range(org.pseudo_channels) for r in range(org.ranks)
                              for g in range(org.bankgroups) for b in range(org.banks_per_group)}
    limit = 9 * t.REFI
    out = []
    end = views[-1].c.cycle if views else 0
    for v in views:
        if v.c.kind in ("REF", "REFpb"):
            for k in v.banks:
                if v.c.cycle - last[k] > limit:
                    out.append(f"tREFI: bank {k} went {v.c.cycle - last[k]} cycles without refresh (limit 9 x {t.REFI})")
                last[k] = v.c.cycle
    for k, c in last.items():
        if end - c > limit:
            out.append(f"tREFI: bank {k} went {end - c} cycles without refresh up to cycle {end} (limit 9 x {t.REFI})")
    return out
