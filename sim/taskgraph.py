"""A task graph run on simpy: tasks hold a unit for whole cycles once their inputs are done.

The attention accelerators (sim.attention_accel) describe their schedules as tasks -- a tile
op on the 2D array, a pass on the 1D array, a DRAM transfer -- each with the unit it holds,
its cycles, the tasks it waits for, and a priority (program order: lower goes first when a
unit frees). Pipelining, interleaving, fill, drain and stalls come out of the run rather than
from a formula. Tallies (MACs, bytes, ...) ride on the tasks and are summed per run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Task:
    """One piece of work: ``cycles`` on ``unit`` after every task in ``deps`` is done.

    A task with no unit is a join: it only waits for its deps."""

    unit: str | None
    cycles: int
    deps: tuple["Task", ...] = ()
    priority: int = 0
    tally: dict[str, int] = field(default_factory=dict)
    done: object = field(default=None, repr=False)  # the simpy event, set by run_tasks


@dataclass(frozen=True)
class GraphRun:
    """What a run measured: makespan, busy cycles per unit, summed tallies, and events (three per
    task that holds a unit: its request, its hold and its release)."""

    cycles: int
    busy: dict[str, int]
    tally: dict[str, int]
    events: int


def run_tasks(tasks: list[Task], units: tuple[str, ...]) -> GraphRun:
    """Run ``tasks`` (listed so that every task comes after its deps) to completion."""
    import simpy

    env = simpy.Environment()
    resources = {u: simpy.PriorityResource(env, capacity=1) for u in units}
    busy: Counter[str] = Counter()
    events = 0

    def work(task: Task, deps: list):
        nonlocal events
        if deps:
            yield env.all_of(deps)
        if task.unit is None:
            return
        with resources[task.unit].request(priority=task.priority) as req:
            yield req
            yield env.timeout(task.cycles)
        busy[task.unit] += task.cycles
        events += 3

    for task in tasks:
        task.done = env.process(work(task, [d.done for d in task.deps]))
    env.run()
    tally: Counter[str] = Counter()
    for task in tasks:
        tally.update(task.tally)
    return GraphRun(int(env.now), {u: busy[u] for u in units}, dict(tally), events)
