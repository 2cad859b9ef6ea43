"""Run a sweep: every (design point, workload) of a spec, in-process, on a process pool or on Ray.

Workers only evaluate and return plain dicts; the parent writes every row to the store, so a
killed sweep loses at most the points in flight. A point whose evaluation raises is recorded
with status ``error`` and its one-line message, and the sweep goes on. Each worker keeps a
mapping cache across points (keyed by GEMM shape and architecture parameters); the parent
merges what workers learn and saves it in OUT, so a later run over the same OUT starts warm.
"""

from __future__ import annotations

import numbers
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from sim.sweep_spec import SweepError, SweepSpec, build_workload, load_spec

EXECUTORS = ("local", "ray")
_SAVE_CACHE_EVERY_S = 60.0


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did: runs in the spec and, over the whole OUT, how many are ok, skipped, failed."""

    total: int
    done: int
    skipped: int
    failed: int
    elapsed_s: float
    points_per_s: float  # runs evaluated by this call per second of it

    def line(self, out: str | Path) -> str:
        """The one-line summary the CLI prints."""
        return (f"einsim sweep: {self.done}/{self.total} ok, {self.failed} failed, {self.skipped} skipped "
                f"in {self.elapsed_s:.1f} s ({self.points_per_s:.2f} points/s) -> {Path(out) / 'results.sqlite'}")


@dataclass(frozen=True)
class Task:
    """What a worker needs for one run: plain data only (it may cross to another machine)."""

    point_id: str
    arch: dict
    workload: dict


def sweep(spec, out, *, jobs: int = 1, executor: str = "local", address: str | None = None, resume: bool = False,
          progress: bool = False) -> SweepSummary:
    """Validate ``spec`` (YAML path, dict or SweepSpec) whole, then run what OUT lacks and store every row."""
    from sim.store import Store, load_cache, save_cache

    start = time.perf_counter()
    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor '{executor}'; use {' or '.join(EXECUTORS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepError(f"jobs must be a positive integer, got {jobs!r}")
    if address and executor != "ray":
        raise SweepError("--address applies only to --executor ray")
    if executor == "ray":
        _import_ray()
    plan = load_spec(spec)
    store = Store.open(out, plan, resume=resume)
    cache = _Cache(load_cache(out, plan.version))
    ran = 0
    try:
        finished = store.finished()
        runs = plan.runs()
        skipped = [_skipped_row(r) for r in runs if r.point.skip and r.point_id not in finished]
        store.write(skipped)
        todo = [r for r in runs if not r.point.skip and r.point_id not in finished]
        tasks = [Task(r.point_id, plan.arch_dict(r.point), r.workload.key) for r in todo]
        bar = _Progress(len(runs), len(runs) - len(todo), sys.stderr if progress else None)
        outcomes = (_inline(tasks, cache) if executor == "local" and jobs == 1 else
                    _pool(tasks, jobs, cache) if executor == "local" else _ray(tasks, jobs, address, cache))
        saved = time.perf_counter()
        try:
            for i, outcome in outcomes:
                cache.update(outcome.pop("cache"))
                store.write([_row(plan, todo[i], outcome)])
                ran += 1
                bar.step()
                if time.perf_counter() - saved > _SAVE_CACHE_EVERY_S:
                    save_cache(out, cache, plan.version)
                    saved = time.perf_counter()
        finally:
            outcomes.close()
            bar.close()
        counts = store.counts()
    finally:
        save_cache(out, cache, plan.version)
        store.close()
    elapsed = time.perf_counter() - start
    return SweepSummary(len(runs), counts["ok"], counts["skipped"], counts["error"], elapsed, ran / elapsed if elapsed else 0.0)


# --- rows ----------------------------------------------------------------------------------------


def _base_row(run) -> dict:
    row = {"point_id": run.point_id, "ord": run.ord, "point": run.point.index, "workload_index": run.workload.index}
    row.update(run.point.columns)
    row.update(run.workload.columns)
    row.update(run.point.area)
    return row


def _skipped_row(run) -> dict:
    """The row of a run not made because its design point breaks an area constraint."""
    return {**_base_row(run), "status": "skipped", "error": run.point.skip, "elapsed_s": 0.0, "feasible": 0}


def _row(plan: SweepSpec, run, outcome: dict) -> dict:
    """The stored row of a run: parameters, workload, area, the worker's metrics, feasibility."""
    row = {**_base_row(run), "status": outcome["status"], "error": outcome["error"], "elapsed_s": outcome["elapsed_s"]}
    row.update(outcome["metrics"])
    if outcome["status"] == "ok" and plan.constraints:
        row["feasible"] = int(all(c.holds(row) is not False for c in plan.constraints))
    elif outcome["status"] == "ok":
        row["feasible"] = 1
    return row


def metrics_of(result) -> dict:
    """Every metric of a RunResult as a flat dict (util.*, traffic.*, energy.*, ops.*, stall.* flattened)."""
    e = result.einsums
    out = {
        "latency_s": float(result.latency_s),
        "latency_cycles": int(result.latency_cycles),
        "energy_pj": float(result.energy_pj),
        "macs": int(result.macs),
        "clock_hz": float(result.clock_hz),
        "roofline_cycles": _num(sum(x.repeat * x.model.bound_cycles for x in e)),
        "events": int(sum(x.sim.events for x in e)),
        "model.latency_cycles": _num(sum(x.repeat * x.model.latency_cycles for x in e)),
        "model.energy_pj": float(sum(x.repeat * x.model.energy_pj for x in e)),
    }
    for prefix, values in (("util", result.utilization), ("traffic", result.traffic_bytes),
                           ("energy", result.energy_breakdown), ("ops", result.ops), ("stall", result.stall_cycles)):
        out.update({f"{prefix}.{k}": _num(v) for k, v in values.items()})
    return out


def _num(v):
    """A plain Python int or float (numpy scalars included)."""
    return int(v) if isinstance(v, numbers.Integral) else float(v)


# --- the worker side -----------------------------------------------------------------------------


class _Cache(dict):
    """A mapping cache that remembers what was added since the last ``take_added``."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.added: dict = {}

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.added[key] = value

    def take_added(self) -> dict:
        added, self.added = self.added, {}
        return added


_PROGRAMS: dict = {}
_WORKER: dict = {"cache": _Cache(), "token": None}


def _workload(key: dict):
    """The workload of a key, lowered models memoised per process (a few, they are large)."""
    if "spec" in key:
        return key["spec"]
    import json

    ident = json.dumps(key, sort_keys=True)
    if ident not in _PROGRAMS:
        if len(_PROGRAMS) >= 16:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[ident] = build_workload(key)
    return _PROGRAMS[ident]


def run_task(task: Task, cache: _Cache) -> dict:
    """Evaluate one run; never raises: a failure is status error with a one-line message."""
    from arch import arch_from_dict
    from sim.run import evaluate

    start = time.perf_counter()
    metrics, status, error = {}, "ok", None
    try:
        result = evaluate(arch_from_dict(task.arch), _workload(task.workload), cache=cache)
        metrics = metrics_of(result)
    except Exception as err:  # any failure of one point is that point's result, not the sweep's
        status, error = "error", _one_line(err)
    return {"point_id": task.point_id, "status": status, "error": error, "elapsed_s": time.perf_counter() - start,
            "metrics": metrics, "cache": cache.take_added()}


def _one_line(err: BaseException) -> str:
    """An exception as one line: einsim's own errors as they read, others prefixed with their type."""
    from arch import ArchError, YamlError
    from mappers import MappingError
    from sim.errors import InputError
    from workloads import WorkloadError

    text = " ".join(str(err).split())
    if isinstance(err, (ArchError, YamlError, MappingError, InputError, WorkloadError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _init_worker(cache: dict) -> None:
    """Process-pool initializer: the worker's mapping cache starts from what the parent knows, and
    the worker exits when the parent dies (a SIGKILLed sweep must not leave workers behind)."""
    import os
    import threading

    _WORKER["cache"] = _Cache(cache)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    import os

    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _pool_task(task: Task) -> dict:
    return run_task(task, _WORKER["cache"])


def _ray_task(task: Task, token: str, box: list) -> dict:
    """A Ray task: loads the sweep's initial mapping cache once per worker process, then runs."""
    if _WORKER["token"] != token:
        import ray

        _WORKER["cache"], _WORKER["token"] = _Cache(ray.get(box[0])), token
    return run_task(task, _WORKER["cache"])


# --- executors -----------------------------------------------------------------------------------


def _inline(tasks: list[Task], cache: _Cache):
    """Run in this process (jobs=1), sharing the parent's cache."""
    for i, task in enumerate(tasks):
        yield i, run_task(task, cache)


def _died(task: Task, why: str) -> dict:
    return {"point_id": task.point_id, "status": "error", "error": why, "elapsed_s": 0.0, "metrics": {}, "cache": {}}


def _pool(tasks: list[Task], jobs: int, cache: dict):
    """Run on a local process pool; a point that kills its worker twice is recorded as an error."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending = deque(enumerate(tasks))
    deaths: dict[int, int] = {}
    while pending:
        pool = ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(dict(cache),))
        inflight: dict = {}
        try:
            broken = False
            while (pending or inflight) and not broken:
                while pending and len(inflight) < 2 * jobs:
                    i, task = pending.popleft()
                    inflight[pool.submit(_pool_task, task)] = (i, task)
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    i, task = inflight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken = True
                        deaths[i] = deaths.get(i, 0) + 1
                        if deaths[i] >= 2:
                            yield i, _died(task, "worker process died (out of memory or killed)")
                        else:
                            pending.appendleft((i, task))
                        continue
                    yield i, outcome
            for future, (i, task) in inflight.items():  # a broken pool fails every point in flight: retry them
                deaths[i] = deaths.get(i, 0) + 1
                pending.appendleft((i, task))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    """The ray module, or a one-line SweepError saying how to get it."""
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray: install einsim[ray] (pip install 'einsim[ray]')") from None
    return ray


def _ray(tasks: list[Task], jobs: int, address: str | None, cache: dict):
    """Run as Ray tasks: on the cluster at ``address``, else on a local Ray with ``jobs`` CPUs."""
    import logging

    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **quiet)
        else:  # "local": a fresh Ray of our own, even when RAY_ADDRESS names a cluster
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, **quiet)
        started = True
    inflight: dict = {}
    try:
        remote = ray.remote(num_cpus=1, max_retries=1)(_ray_task)
        box = [ray.put(dict(cache))]
        token = uuid.uuid4().hex
        window = 2 * max(jobs, int(ray.cluster_resources().get("CPU", jobs)))
        pending = deque(enumerate(tasks))
        while pending or inflight:
            while pending and len(inflight) < window:
                i, task = pending.popleft()
                inflight[remote.remote(task, token, box)] = (i, task)
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                i, task = inflight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # the task's worker died or Ray lost it
                    outcome = _died(task, f"ray: {_one_line(err).splitlines()[0][:300]}")
                yield i, outcome
    finally:
        for ref in inflight:  # left over only when the sweep stops early
            ray.cancel(ref)
        if started:
            ray.shutdown()


# --- progress ------------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on a stream: done/total, points/s and ETA (no output without a stream)."""

    def __init__(self, total: int, already: int, stream) -> None:
        self.total, self.done, self.start_done, self.stream = total, already, already, stream
        self.start = self.last = time.perf_counter()
        self.shown = -1
        self._draw(force=True)

    def step(self) -> None:
        self.done += 1
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.1 and self.done < self.total:
            return
        self.last, self.shown = now, self.done
        ran, elapsed = self.done - self.start_done, now - self.start
        rate = ran / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 else "--:--"
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  "
                          f"{rate:.2f} points/s  ETA {eta}  ")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            if self.shown != self.done:
                self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"
