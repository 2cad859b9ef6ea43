"""sim.plots: the Pareto mask against brute force, every plot writes a real PNG, and ``einsim plot``."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import sim
from sim import evaluate, plots
from sim.cli import main
from sim.inputs import resolve_arch

MIN_PNG_BYTES = 1024


def brute_force_front(values: np.ndarray) -> np.ndarray:
    """Row i is on the front unless some row j is <= in every objective and < in one (finite rows only)."""
    n = len(values)
    keep = np.isfinite(values).all(axis=1)
    for i, j in itertools.product(range(n), range(n)):
        if keep[i] and np.isfinite(values[j]).all() and np.all(values[j] <= values[i]) and np.any(values[j] < values[i]):
            keep[i] = False
    return keep


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="module")
def run():
    """A small GEMM on the edge preset, traced, so every run plot has data."""
    return evaluate("edge-32x32", "gemm:128,256,192", trace=True)


@pytest.fixture
def sweep_frame() -> pd.DataFrame:
    """A synthetic sweep table shaped like sim.load_results: axes, workload columns and metrics."""
    rng = np.random.default_rng(7)
    n = 40
    return pd.DataFrame({"compute.mxu.rows": rng.choice([32, 64, 128], n), "model": rng.choice(["bert-base", "llama2-7b"], n),
                         "latency_s": rng.lognormal(-6, 1, n), "energy_pj": rng.lognormal(20, 1, n),
                         "area_mm2": rng.uniform(5, 50, n), "status": "ok"})


def assert_png(fig, path) -> None:
    assert path.is_file() and path.stat().st_size > MIN_PNG_BYTES
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes and any(ax.has_data() for ax in fig.axes)


# ---------------------------------------------------------------- pareto_mask


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("k", [2, 3])
def test_pareto_mask_matches_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # small integers make ties and exact duplicates common, where dominance is easiest to get wrong
    values = rng.integers(0, 6, size=(n, k)).astype(float) if seed % 2 else rng.normal(size=(n, k))
    if seed % 5 == 0:
        values[rng.integers(0, n)] = np.nan
    np.testing.assert_array_equal(plots.pareto_mask(values), brute_force_front(values))


def test_pareto_mask_edge_cases():
    assert plots.pareto_mask(np.empty((0, 2))).shape == (0,)
    np.testing.assert_array_equal(plots.pareto_mask([[1, 1], [1, 1], [2, 2]]), [True, True, False])
    np.testing.assert_array_equal(plots.pareto_mask([[1, 3], [3, 1], [2, 2], [3, 3]]), [True, True, True, False])
    with pytest.raises(ValueError, match="array"):
        plots.pareto_mask(np.ones(4))


def test_pareto_front_per_group(sweep_frame):
    front = plots.pareto_front(sweep_frame, ["latency_s", "energy_pj"], by="model")
    for model, group in sweep_frame.groupby("model"):
        expected = group[brute_force_front(group[["latency_s", "energy_pj"]].to_numpy())]
        assert sorted(front[front["model"] == model].index) == sorted(expected.index)


def test_pareto_front_rejects_bad_objectives(sweep_frame):
    with pytest.raises(ValueError, match="no column 'joules'"):
        plots.pareto_front(sweep_frame, ["latency_s", "joules"])
    with pytest.raises(ValueError, match="2 or 3 objectives"):
        plots.pareto_front(sweep_frame, ["latency_s"])


# ---------------------------------------------------------------- plots write PNGs


@pytest.mark.parametrize("objectives", [["latency_s", "energy_pj"], ["latency_s", "energy_pj", "area_mm2"]])
@pytest.mark.parametrize("hue", [None, "model", "compute.mxu.rows"])
def test_plot_pareto_png(sweep_frame, tmp_path, objectives, hue):
    path = tmp_path / "pareto.png"
    assert_png(plots.plot_pareto(sweep_frame, objectives, path, hue=hue, log=True), path)


def test_plot_pareto_skips_failed_points(sweep_frame, tmp_path):
    frame = sweep_frame.copy()
    frame.loc[:4, "latency_s"] = np.nan
    path = tmp_path / "pareto.png"
    assert_png(plots.plot_pareto(frame, ["latency_s", "energy_pj"], path), path)


def test_plot_roofline_png(run, tmp_path):
    path = tmp_path / "roofline.png"
    assert_png(plots.plot_roofline(run, "edge-32x32", path), path)
    (point,) = plots.roofline_points(run, resolve_arch("edge-32x32"))
    assert point["ops_per_s"] == pytest.approx(run.macs / run.latency_s)


def test_plot_timeline_png(run, tmp_path):
    path = tmp_path / "timeline.png"
    assert_png(plots.plot_timeline(run, path), path)
    bars = plots.timeline_bars(run)
    assert {"pe_array", "dram.rw"} <= set(bars)
    assert sum(d for _, d in bars["pe_array"]["compute"]) == run.einsums[0].sim.compute_cycles


def test_plot_timeline_needs_trace(tmp_path):
    with pytest.raises(ValueError, match="trace=True"):
        plots.plot_timeline(evaluate("edge-32x32", "gemm:64,64,64"), tmp_path / "t.png")


def test_plot_energy_png(run, tmp_path):
    path = tmp_path / "energy.png"
    assert_png(plots.plot_energy(run, path), path)
    table = plots.energy_table(run)
    assert sum(sum(per.values()) for per in table.values()) == pytest.approx(run.energy_pj)


def test_plot_returns_figure_without_saving(run, tmp_path):
    fig = plots.plot_energy(run)
    assert fig.axes and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- einsim plot


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``einsim`` in process; a usage error's SystemExit becomes its exit code."""
    try:
        rc = main(list(argv))
    except SystemExit as stop:
        rc = stop.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("kind", ["roofline", "timeline", "energy"])
def test_cli_plot_from_run(capsys, tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    rc, out, err = cli(capsys, "plot", kind, "--arch", "edge-32x32", "--workload", "gemm:128,128,128", "-o", str(path))
    assert rc == 0, err
    assert out.strip() == str(path)
    assert path.stat().st_size > MIN_PNG_BYTES


def test_cli_plot_model_lowering(capsys, tmp_path):
    path = tmp_path / "energy.png"
    rc, _, err = cli(capsys, "plot", "energy", "--arch", "tpu-like", "--workload", "llama2-7b", "--phase", "decode",
                     "--kv-len", "64", "-o", str(path))
    assert rc == 0, err
    assert path.stat().st_size > MIN_PNG_BYTES


def test_cli_plot_pareto(capsys, tmp_path, monkeypatch, sweep_frame):
    """The pareto verb reads the store through sim.load_results (stubbed here; the sweep has its own tests)."""
    seen = []
    monkeypatch.setattr(sim, "load_results", lambda out: seen.append(out) or sweep_frame, raising=False)
    rc, out, err = cli(capsys, "plot", "pareto", str(tmp_path), "--objectives", "latency_s", "energy_pj", "--hue", "model")
    assert rc == 0, err
    assert seen == [str(tmp_path)]
    assert (tmp_path / "pareto.png").stat().st_size > MIN_PNG_BYTES
    path = tmp_path / "front3d.png"
    rc, _, err = cli(capsys, "plot", "pareto", str(tmp_path), "--objectives", "latency_s", "energy_pj", "area_mm2",
                     "-o", str(path))
    assert rc == 0, err
    assert path.stat().st_size > MIN_PNG_BYTES


def test_cli_plot_pareto_from_real_sweep(capsys, tmp_path):
    spec = {"base": "edge-32x32", "axes": {"compute.pe_array.rows": [8, 16]}, "combine": "grid",
            "tie": {"compute.pe_array.cols": "compute.pe_array.rows"}, "workloads": ["gemm:64,64,64"],
            "objectives": ["latency_s", "energy_pj"]}
    from sim import sweep

    sweep(spec, tmp_path / "store")
    path = tmp_path / "pareto.png"
    rc, _, err = cli(capsys, "plot", "pareto", str(tmp_path / "store"), "--objectives", "latency_s", "energy_pj",
                     "-o", str(path))
    assert rc == 0, err
    assert path.stat().st_size > MIN_PNG_BYTES


def one_line_error(rc: int, err: str) -> None:
    assert rc == 2
    assert err.startswith("einsim: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [
    ["plot", "energy", "--arch", "no-such-preset", "--workload", "gemm:64,64,64", "-o", "x.png"],
    ["plot", "energy", "--arch", "tpu-like", "--workload", "gemm:64,64", "-o", "x.png"],
    ["plot", "roofline", "--arch", "tpu-like", "--workload", "gemm:64,64,64", "--seq", "128", "-o", "x.png"],
    ["plot", "timeline", "--arch", "tpu-like", "--workload", "gemm:64,64,64", "-o", "x.bogus"],
    ["plot", "energy", "--arch", "tpu-like", "--workload", "gemm:64,64,64"],
    ["plot", "pareto", "no/such/sweep", "--objectives", "latency_s", "energy_pj"],
    ["plot", "pareto", ".", "--objectives", "latency_s", "energy_pj"],  # a folder, but no sweep store in it
    ["plot", "heatmap"],
])
def test_cli_plot_bad_input_is_one_line(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    one_line_error(*cli(capsys, *argv)[::2])
    assert not list(tmp_path.glob("x.*"))


def test_cli_plot_pareto_bad_objective(capsys, tmp_path, monkeypatch, sweep_frame):
    monkeypatch.setattr(sim, "load_results", lambda out: sweep_frame, raising=False)
    rc, _, err = cli(capsys, "plot", "pareto", str(tmp_path), "--objectives", "latency_s", "joules")
    one_line_error(rc, err)
    assert "joules" in err

