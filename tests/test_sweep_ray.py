"""The Ray executor gives the same rows, every metric column, as the local process pool."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from conftest import TINY_ARCH as BASE

SPEC = """\
base: base.yaml
axes:
  compute.array.rows: [4, 8]
  memories.buf.capacity: [8 B, 32 KiB]
workloads:
  - gemm:32,32,32
  - gemm:16,32,8
"""


def test_ray_matches_the_local_pool(tmp_path):
    import pandas as pd

    from sim import load_results, sweep

    (tmp_path / "base.yaml").write_text(BASE)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    on_ray = sweep(str(spec), tmp_path / "ray", jobs=2, executor="ray")
    assert not ray.is_initialized()  # the sweep shut down the Ray it started
    local = sweep(str(spec), tmp_path / "local", jobs=2)
    assert (on_ray.total, on_ray.done, on_ray.failed) == (local.total, local.done, local.failed) == (8, 4, 4)
    a, b = (load_results(tmp_path / d, all=True).drop(columns=["elapsed_s"]) for d in ("ray", "local"))
    assert list(a.columns) == list(b.columns) and "util.array" in a.columns
    pd.testing.assert_frame_equal(a, b)


def test_missing_ray_is_one_line(tmp_path, monkeypatch):
    import sys

    from sim import sweep
    from sim.sweep_spec import SweepError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SweepError, match=r"install einsim\[ray\]"):
        sweep({"base": "tpu-like", "workloads": ["gemm:64,64,64"]}, tmp_path / "out", executor="ray")
    assert not (tmp_path / "out").exists()
