"""Resuming sweeps: a SIGKILLed sweep resumes to exactly the rows of an uninterrupted one; a
resume with another spec is refused; the mapping cache saved in OUT makes a re-run warm."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.sweep_spec import SweepError

ROOT = Path(__file__).resolve().parents[1]

from conftest import TINY_ARCH as BASE

SPEC = """\
base: base.yaml
axes:
  compute.array.rows: [4, 8, 16]
  memories.buf.capacity: [8 B, 16 KiB, 32 KiB, 64 KiB]
  memories.dram.ports.rw.bandwidth: [8 GB/s, 16 GB/s, 32 GB/s]
tie:
  compute[0].cols: compute.array.rows
workloads:
  - gemm:32,32,32
objectives: [latency_s, energy_pj]
"""
TOTAL = 3 * 4 * 3


def setup(tmp_path, spec: str = SPEC) -> str:
    (tmp_path / "base.yaml").write_text(BASE)
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    return str(path)


def rows(out: Path) -> int:
    try:
        with sqlite3.connect(out / "results.sqlite", timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def survivors(marker: str) -> list[int]:
    """Pids of processes whose command line mentions ``marker`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def comparable(df):
    return df.drop(columns=["elapsed_s"]).reset_index(drop=True)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    import pandas as pd

    from sim import load_results, sweep

    spec = setup(tmp_path)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "sweep", spec, "-o", str(out), "-j", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while rows(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read().decode()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    at_kill = rows(out)
    assert 3 <= at_kill < TOTAL
    if Path("/proc").is_dir():  # the pool's workers follow their parent
        deadline = time.monotonic() + 10
        while survivors(str(out)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivors(str(out)) == []

    summary = sweep(spec, out, resume=True)
    assert (summary.total, summary.done + summary.failed) == (TOTAL, TOTAL)
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT point_id) FROM results").fetchone() == (TOTAL, TOTAL)

    sweep(spec, tmp_path / "straight")
    resumed, straight = load_results(out, all=True), load_results(tmp_path / "straight", all=True)
    assert len(straight) == TOTAL and (straight["status"] == "error").sum() == 3 * 3  # the 8 B buffers
    pd.testing.assert_frame_equal(comparable(resumed), comparable(straight))


def test_resume_refuses_another_spec_and_runs_nothing_when_complete(tmp_path):
    from sim import sweep

    small = SPEC.replace("[4, 8, 16]", "[4]").replace("[8 GB/s, 16 GB/s, 32 GB/s]", "[16 GB/s]")
    spec = setup(tmp_path, small)
    out = tmp_path / "out"
    first = sweep(spec, out)
    assert first.total == 4 and (out / "spec.yaml").read_text() == small
    again = sweep(spec, out, resume=True)
    assert (again.total, again.done, again.failed, again.points_per_s) == (4, 3, 1, 0.0)
    with pytest.raises(SweepError, match=r"already holds a sweep; pass --resume"):
        sweep(spec, out)
    other = tmp_path / "other.yaml"
    other.write_text(small.replace("[4]", "[4, 8]"))
    with pytest.raises(SweepError, match=r"spec.yaml: --resume with a different spec \(axes differ\)"):
        sweep(str(other), out, resume=True)


def test_a_rerun_is_warm_from_the_saved_mapping_cache(tmp_path, monkeypatch):
    import pandas as pd

    import sim.run
    from sim import load_results, sweep
    from sim.store import CACHE, load_cache
    from sim.sweep_spec import einsim_version

    spec = setup(tmp_path, SPEC.replace("[4, 8, 16]", "[4, 8]").replace("[8 B, ", "["))
    out = tmp_path / "out"
    sweep(spec, out)
    cold = load_results(out, all=True)
    cache = load_cache(out, einsim_version())
    assert (out / CACHE).is_file() and len(cache) == 2 * 3 * 3  # one GEMM shape per architecture

    calls = []
    real = sim.run.default_mapping
    monkeypatch.setattr(sim.run, "default_mapping", lambda *a, **k: calls.append(1) or real(*a, **k))
    for name in ("results.sqlite", "results.sqlite-wal", "results.sqlite-shm", "spec.yaml"):
        (out / name).unlink(missing_ok=True)
    sweep(spec, out)
    assert calls == []  # every mapping came from the cache
    pd.testing.assert_frame_equal(comparable(load_results(out, all=True)), comparable(cold))
