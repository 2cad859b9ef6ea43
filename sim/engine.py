"""Event-driven simulation (simpy) of one mapped Einsum's tile program.

Three processes share the memory ports: a loader fetches each step's tiles (running one step
ahead when the innermost memory is double-buffered), the array computes each tile for its
exact cycle count (mappers.cost.tile_duration), and a storer writes finished output tiles
back. Ports are simpy resources, so transfers that share one queue behind each other. Time is
an integer count of cycles of the compute unit's clock; transfers round up to whole cycles.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import simpy

from mappers.cost import port_rate, tile_duration, transfer_cycles
from mappers.mapping import Mapping
from mappers.systolic import array_accesses
from mappers.view import MatmulView
from sim.program import Step, Transfer, tile_program


@dataclass(frozen=True)
class TraceEvent:
    """One interval on one track of the timeline (cycles)."""

    name: str
    track: str
    start: int
    duration: int


@dataclass(frozen=True)
class SimStats:
    """What the event simulation of one Einsum measured."""

    latency_cycles: int
    compute_cycles: int  # cycles the array spent on tiles (busy)
    stall_free_cycles: int
    stall_cycles: dict[str, int]  # why the array waited: "load" (data not there yet)
    macs: int
    traffic: dict[str, dict[str, dict[str, float]]]  # memory -> tensor -> {"read", "write"} bytes
    port_busy: dict[str, int]  # "memory.port" -> busy cycles
    crossing: dict[tuple[str, str], float]  # (outer, inner) memory -> bytes over that boundary
    events: int
    trace: tuple[TraceEvent, ...] = field(default=(), repr=False)


def simulate(view: MatmulView, mapping: Mapping, arch, trace: bool = False) -> SimStats:
    """Run the tile program of ``mapping`` (assumed valid) through the event engine."""
    env = simpy.Environment()
    unit = arch.unit(mapping.unit)
    clock = arch.clock_hz(unit)
    mems = arch.memories
    innermost = mems[-1]
    traffic = {m.name: {t: {"read": 0.0, "write": 0.0} for t in view.tensors.values()} for m in mems}
    ports: dict[tuple, simpy.Resource] = {}
    busy: Counter = Counter()
    crossing: Counter = Counter()
    done_events: dict[tuple, simpy.Event] = {}
    events = [0]
    timeline: list[TraceEvent] = []
    counters = {"compute": 0, "stall_free": 0, "macs": 0, "load_wait": 0}

    def done(tag: tuple) -> simpy.Event:
        if tag not in done_events:
            done_events[tag] = env.event()
        return done_events[tag]

    def transfer(tr: Transfer):
        outer, inner = mems[tr.b - 1], mems[tr.b]
        key, rate = port_rate(arch, outer, tr.role, tr.direction, clock, inner.name)
        if tr.after is not None:
            yield done(tr.after)
        cycles = transfer_cycles(tr.nbytes, rate)
        if cycles:
            if key not in ports:
                ports[key] = simpy.Resource(env, capacity=1)
            with ports[key].request() as req:
                yield req
                t0 = env.now
                yield env.timeout(cycles)
            busy[f"{key[0]}.{key[1]}"] += cycles
            if trace:
                name = f"{'load' if tr.direction == 'read' else 'store'} {view.tensors[tr.role]}"
                timeline.append(TraceEvent(name, f"{key[0]}.{key[1]}", t0, cycles))
        tensor = view.tensors[tr.role]
        traffic[outer.name][tensor][tr.direction] += tr.nbytes
        traffic[inner.name][tensor]["write" if tr.direction == "read" else "read"] += tr.nbytes
        crossing[(outer.name, inner.name)] += tr.nbytes
        events[0] += 1
        if tr.tag is not None:
            done(tr.tag).succeed()

    slots = simpy.Resource(env, capacity=2 if innermost.double_buffered else 1)
    ready = simpy.Store(env)
    outbox = simpy.Store(env)
    steps = tile_program(view, mapping)

    def loader():
        for step in steps:
            slot = slots.request()
            yield slot
            for b in range(1, len(mems)):
                group = [env.process(transfer(tr)) for tr in step.loads if tr.b == b]
                if group:
                    yield env.all_of(group)
            yield ready.put((step, slot))
        yield ready.put(None)

    def compute():
        while True:
            t0 = env.now
            item = yield ready.get()
            if item is None:
                yield outbox.put(None)
                return
            step, slot = item
            counters["load_wait"] += env.now - t0
            cycles, base = tile_duration(view, unit, innermost, step.dims, step.continues, clock)
            start = env.now
            yield env.timeout(cycles)
            _account_array(step, view, unit, traffic[innermost.name], counters, cycles, base)
            events[0] += 1
            if trace:
                timeline.append(TraceEvent(f"{view.einsum} tile", unit.name, start, cycles))
            slots.release(slot)
            for tr in step.stores:
                yield outbox.put(tr)

    def storer():
        while True:
            tr = yield outbox.get()
            if tr is None:
                return
            yield env.process(transfer(tr))

    env.process(loader())
    env.process(compute())
    finished = env.process(storer())
    env.run(until=finished)
    return SimStats(
        latency_cycles=int(env.now),
        compute_cycles=counters["compute"],
        stall_free_cycles=counters["stall_free"],
        stall_cycles={"load": counters["load_wait"], "buffer_bandwidth": counters["compute"] - counters["stall_free"]},
        macs=counters["macs"],
        traffic=traffic,
        port_busy=dict(busy),
        crossing=dict(crossing),
        events=events[0],
        trace=tuple(timeline),
    )


def _account_array(step: Step, view: MatmulView, unit, inner_traffic: dict, counters: dict, cycles: int, base: int) -> None:
    """Count one compute tile's MACs, cycles and array-side accesses to the feeding memory."""
    b, m, n, k = step.dims
    acc = array_accesses(unit.dataflow, unit.rows, unit.cols, m, n, k, step.continues)
    t = view.tensors
    inner_traffic[t["input"]]["read"] += b * acc.input_reads * view.elem_bytes["input"]
    inner_traffic[t["weight"]]["read"] += b * acc.weight_reads * view.elem_bytes["weight"]
    inner_traffic[t["output"]]["read"] += b * acc.output_reads * view.elem_bytes["output"]
    inner_traffic[t["output"]]["write"] += b * acc.output_writes * view.elem_bytes["output"]
    counters["compute"] += cycles
    counters["stall_free"] += base
    counters["macs"] += b * m * n * k
