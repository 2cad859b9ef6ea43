"""Chrome / Perfetto trace (JSON "X" events) of a run's tile events."""

from __future__ import annotations

import json
from pathlib import Path

from sim.result import RunResult


def trace_events(result: RunResult) -> list[dict]:
    """Complete events, one per tile event; Einsums are laid end to end, times in microseconds."""
    us_per_cycle = 1e6 / result.clock_hz
    tracks: dict[str, int] = {}
    out = []
    offset = 0
    for e in result.einsums:
        for ev in e.sim.trace:
            tid = tracks.setdefault(ev.track, len(tracks) + 1)
            out.append({"name": ev.name, "cat": e.einsum, "ph": "X", "pid": 1, "tid": tid,
                        "ts": (offset + ev.start) * us_per_cycle, "dur": ev.duration * us_per_cycle})
        offset += e.sim.latency_cycles
    meta = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": track}} for track, tid in tracks.items()]
    return meta + out


def write_trace(result: RunResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps({"traceEvents": trace_events(result), "displayTimeUnit": "ns"}))
