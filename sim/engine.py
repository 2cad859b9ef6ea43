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

from collections.abc import Iterable

from mappers.cost import port_rate, transfer_cycles
from mappers.mapping import Mapping
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
    stall_cycles: dict[str, int]  # why the unit waited: "load" (data not there yet), "buffer_bandwidth"
    macs: int
    ops: dict[str, int]  # unit op -> count (macs included as "mac")
    traffic: dict[str, dict[str, dict[str, float]]]  # memory -> tensor -> {"read", "write"} bytes
    port_busy: dict[str, int]  # "memory.port" -> busy cycles
    crossing: dict[tuple[str, str], float]  # (outer, inner) memory -> bytes over that boundary
    events: int
    trace: tuple[TraceEvent, ...] = field(default=(), repr=False)


def simulate(view: MatmulView, mapping: Mapping, arch, trace: bool = False) -> SimStats:
    """Run the tile program of a GEMM ``mapping`` (assumed valid) through the event engine."""
    steps = tile_program(view, mapping, arch)
    return run_steps(steps, arch, arch.unit(mapping.unit), view.tensors.values(), view.einsum, trace)


def simulate_vector(view, mapping: Mapping, arch, trace: bool = False) -> SimStats:
    """Run the tile program of a vector ``mapping`` through the event engine."""
    from sim.program import vector_program

    tensors = dict.fromkeys(o.tensor for o in view.operands)
    return run_steps(vector_program(view, mapping, arch), arch, arch.unit(mapping.unit), tensors, view.einsum, trace)


def run_steps(steps: Iterable[Step], arch, unit, tensors: Iterable[str], label: str, trace: bool = False) -> SimStats:
    """Run a tile program on ``unit``: loads, compute and write-backs as concurrent processes."""
    env = simpy.Environment()
    clock = arch.clock_hz(unit)
    mems = arch.memories
    innermost = mems[-1]
    traffic = {m.name: {t: {"read": 0.0, "write": 0.0} for t in tensors} for m in mems}
    ports: dict[tuple, simpy.Resource] = {}
    busy: Counter = Counter()
    crossing: Counter = Counter()
    done_events: dict[tuple, simpy.Event] = {}
    events = [0]
    timeline: list[TraceEvent] = []
    counters = {"compute": 0, "stall_free": 0, "macs": 0, "load_wait": 0}
    ops: Counter = Counter()

    def done(tag: tuple) -> simpy.Event:
        if tag not in done_events:
            done_events[tag] = env.event()
        return done_events[tag]

    def transfer(tr: Transfer):
        outer, inner = mems[tr.outer], mems[tr.b]
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
                name = f"{'load' if tr.direction == 'read' else 'store'} {tr.tensor}"
                timeline.append(TraceEvent(name, f"{key[0]}.{key[1]}", t0, cycles))
        tensor = tr.tensor
        traffic[outer.name][tensor][tr.direction] += tr.nbytes
        traffic[inner.name][tensor]["write" if tr.direction == "read" else "read"] += tr.nbytes
        crossing[(outer.name, inner.name)] += tr.nbytes
        events[0] += 1
        if tr.tag is not None:
            done(tr.tag).succeed()

    slots = simpy.Resource(env, capacity=2 if innermost.double_buffered else 1)
    ready = simpy.Store(env)
    outbox = simpy.Store(env)

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
            start = env.now
            yield env.timeout(step.cycles)
            for tensor, direction, nbytes in step.inner:
                traffic[innermost.name][tensor][direction] += nbytes
            counters["compute"] += step.cycles
            counters["stall_free"] += step.stall_free
            counters["macs"] += step.macs
            ops.update(step.ops)
            events[0] += 1
            if trace:
                timeline.append(TraceEvent(f"{label} tile", unit.name, start, step.cycles))
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
        ops=dict(ops),
        traffic=traffic,
        port_busy=dict(busy),
        crossing=dict(crossing),
        events=events[0],
        trace=tuple(timeline),
    )
