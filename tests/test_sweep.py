"""Sweeps: spec validation (whole, before anything runs, one line per problem), combinations,
the results store (a row per point and workload, every parameter and metric a column), export."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest

from sim.sweep_spec import SweepSpecError, arch_to_dict, load_spec

from conftest import TINY_ARCH


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def spec_text(axes: str = "  compute.array.rows: [4, 8]\n", extra: str = "", workloads: str = "  - gemm:32,32,32\n") -> str:
    return f"base: base.yaml\naxes:\n{axes}workloads:\n{workloads}{extra}"


@pytest.fixture
def base(tmp_path):
    return write(tmp_path, "base.yaml", TINY_ARCH)


@pytest.fixture
def fake_area(monkeypatch):
    """A simple, fixed area model standing in for arch.area: 1e-3 mm2 per PE, 1 mm2 per KiB of buffer."""
    module = types.ModuleType("arch.area")

    def area_breakdown(arch):
        pe = sum(u.rows * u.cols for u in arch.compute) * 1e-3
        sram = sum(m.capacity or 0 for m in arch.memories[1:]) / 1024
        return {"pe": pe, "sram": sram, "total": pe + sram}

    module.area_breakdown = area_breakdown
    monkeypatch.setitem(sys.modules, "arch.area", module)
    return area_breakdown


# --- combinations ----------------------------------------------------------------------------------


def grid_spec(combine, **more):
    return {"base": "tpu-like", "combine": combine, "workloads": ["gemm:64,64,64"],
            "axes": {"compute.mxu.rows": [32, 64, 128], "memories.buffer.capacity": ["4 MiB", "8 MiB", "16 MiB"]}, **more}


def params(spec):
    return [tuple(p.params.values()) for p in spec.points]


def test_grid_is_the_cartesian_product_in_order():
    spec = load_spec(grid_spec("grid"))
    assert len(spec.points) == 9
    assert params(spec)[:4] == [(32, "4 MiB"), (32, "8 MiB"), (32, "16 MiB"), (64, "4 MiB")]


def test_zip_pairs_values():
    spec = load_spec(grid_spec("zip"))
    assert params(spec) == [(32, "4 MiB"), (64, "8 MiB"), (128, "16 MiB")]


def test_random_is_a_seeded_sample_of_the_grid():
    grid = params(load_spec(grid_spec("grid")))
    one = params(load_spec(grid_spec({"random": 4, "seed": 1})))
    again = params(load_spec(grid_spec({"random": 4, "seed": 1})))
    other = params(load_spec(grid_spec({"random": 4, "seed": 3})))
    assert len(one) == 4 and one == again and set(one) <= set(grid)
    assert one == [p for p in grid if p in one]  # in grid order
    assert other != one
    assert params(load_spec(grid_spec({"random": 50, "seed": 1}))) == grid  # more than the grid: all of it


def test_point_ids_are_stable_and_distinct():
    a, b = load_spec(grid_spec("grid")).runs(), load_spec(grid_spec("grid")).runs()
    assert [r.point_id for r in a] == [r.point_id for r in b]
    assert len({r.point_id for r in a}) == len(a) == 9


def test_tie_makes_square_arrays_and_workload_lists_are_axes():
    spec = load_spec({"base": "tpu-like", "axes": {"compute.mxu.rows": [32, 64]}, "tie": {"compute[0].cols": "compute.mxu.rows"},
                      "workloads": ["gemm:64,64,64", {"model": "gpt2-small", "phase": "decode", "kv_len": [64, 128], "segment": "layer"}]})
    for p in spec.points:
        arch = spec.arch_dict(p)
        assert arch["compute"][0]["rows"] == arch["compute"][0]["cols"] == p.params["compute.mxu.rows"]
    assert [w.columns["kv_len"] for w in spec.workloads] == [None, 64, 128]
    assert len(spec.runs()) == 2 * 3


def test_axis_columns_hold_numbers_and_text():
    spec = load_spec({"base": "tpu-like", "workloads": ["gemm:64,64,64"],
                      "axes": {"memories.buffer.capacity": ["4 MiB", "8 MiB"], "memories.hbm.ports.rw.bandwidth": ["100 GB/s", "200 GB/s"],
                               "compute.mxu.dataflow": ["ws", "os"]}})
    cols = spec.points[0].columns
    assert cols["memories.buffer.capacity"] == 4 * 2**20 and cols["memories.buffer.capacity:text"] == "4 MiB"
    assert cols["memories.hbm.ports.rw.bandwidth"] == 100e9
    assert cols["compute.mxu.dataflow"] == cols["compute.mxu.dataflow:text"] == "ws"


def test_arch_to_dict_round_trips_the_presets():
    from arch import arch_from_dict, load_arch

    for name in ("tpu-like", "edge-32x32"):
        arch = load_arch(name)
        assert arch_from_dict(arch_to_dict(arch)) == arch
    spec = load_spec({"base": load_arch("tpu-like"), "axes": {"compute.mxu.rows": [64]}, "workloads": ["gemm:64,64,64"]})
    assert spec.arch_dict(spec.points[0])["compute"][0]["rows"] == 64


# --- bad specs -------------------------------------------------------------------------------------


BAD = [
    ("unknown path", spec_text("  memories.bufer.capacity: [4 KiB]\n"),
     r"spec.yaml:3: axes: unknown path 'memories.bufer.capacity' \(did you mean 'memories.buf.capacity'\?\)"),
    ("empty axis", spec_text("  compute.array.rows: []\n"), r"spec.yaml:3: axes: 'compute.array.rows' has an empty list of values"),
    ("wrong type", spec_text("  compute[0].rows:\n    - 8\n    - abc\n"),
     r"spec.yaml:5: axes: 'compute\[0\].rows' value 'abc' makes an invalid architecture: compute\[0\].rows: must be a valid integer"),
    ("bad unit", spec_text("  memories.buf.capacity: [4 parsecs]\n"),
     r"spec.yaml:3: axes: 'memories.buf.capacity' value '4 parsecs' makes an invalid architecture: .*unknown unit 'parsecs'"),
    ("unknown preset", "base: tpu-lik\nworkloads:\n  - gemm:32,32,32\n",
     r"spec.yaml:1: base: unknown architecture preset 'tpu-lik' \(did you mean 'tpu-like'\?\)"),
    ("unsatisfiable", spec_text(extra="constraints: ['area_mm2 <= 0.001']\n"),
     r"spec.yaml:6: constraints\[0\]: constraint 'area_mm2 <= 0.001' excludes every design point \(smallest area 64.032 mm2\)"),
    ("zip lengths", spec_text("  compute.array.rows: [4, 8]\n  compute.array.cols: [4]\n", "combine: zip\n"),
     r"spec.yaml:7: combine: zip needs axes of equal length: 'compute.array.rows' has 2 values, 'compute.array.cols' has 1"),
    ("unknown metric", spec_text(extra="constraints: ['latncy_s <= 1']\n"),
     r"spec.yaml:6: constraints\[0\]: constraint 'latncy_s <= 1' names unknown metric 'latncy_s' \(did you mean 'latency_s'\?\)"),
    ("bad constraint", spec_text(extra="constraints: ['area_mm2 =< 4']\n"),
     r"spec.yaml:6: constraints\[0\]: 'area_mm2 =< 4' is not 'metric OP number'"),
    ("unknown objective", spec_text(extra="objectives: [latency_s, energy]\n"),
     r"spec.yaml:6: objectives\[1\]: objective names unknown metric 'energy' \(did you mean 'energy_pj'\?\)"),
    ("unknown model", spec_text(workloads="  - {model: bert-bse, seq: 64}\n"),
     r"spec.yaml:5: workloads\[0\].model: unknown model 'bert-bse' \(did you mean 'bert-base'\?\)"),
    ("unknown phase", spec_text(workloads="  - {model: gpt2-small, phase: decoder}\n"),
     r"spec.yaml:5: workloads\[0\]: lower: unknown phase 'decoder' \(known: encoder, prefill, decode\)"),
    ("unknown workload key", spec_text(workloads="  - {model: gpt2-small, sequence: 64}\n"),
     r"spec.yaml:5: workloads\[0\].sequence: unknown key; known: model, phase"),
    ("unknown segment", spec_text(workloads="  - {model: gpt2-small, seq: 64, segment: layers}\n"),
     r"spec.yaml:5: workloads\[0\].segment: unknown segment 'layers' \(did you mean 'layer'\?\)"),
    ("split gemm", "base: base.yaml\nworkloads: [gemm:32,32,32]\n",
     r"spec.yaml:2: workloads\[0\]: 'gemm:32' is followed by the number 32: commas inside \[...\] split a spec"),
    ("duplicate value", spec_text("  compute.array.rows: [4, 4]\n"), r"spec.yaml:3: axes: 'compute.array.rows' lists 4 twice"),
    ("same parameter twice", spec_text("  compute.array.rows: [4]\n  compute[0].rows: [8]\n"),
     r"spec.yaml:4: axes: 'compute\[0\].rows' and 'compute.array.rows' name the same parameter"),
    ("tie to no axis", spec_text(extra="tie:\n  compute[0].cols: compute.array.rowz\n"),
     r"spec.yaml:7: tie: 'compute\[0\].cols' follows 'compute.array.rowz', which is not an axis \(did you mean 'compute.array.rows'\?\)"),
    ("unknown top key", spec_text(extra="constraint: []\n"), r"spec.yaml:6: constraint: unknown key \(did you mean 'constraints'\?\)"),
]


@pytest.mark.parametrize("text, pattern", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_specs_are_refused_in_one_line_before_anything_runs(tmp_path, base, fake_area, text, pattern):
    from sim.sweep_runner import sweep

    spec = write(tmp_path, "spec.yaml", text)
    with pytest.raises(SweepSpecError, match=pattern) as err:
        sweep(spec, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_reports_a_bad_spec_in_one_line(tmp_path, base, capsys):
    from sim.cli import main

    spec = write(tmp_path, "spec.yaml", spec_text("  compute.array.rows: []\n"))
    assert main(["sweep", spec, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("einsim: error: ") and err.count("\n") == 1 and "empty list" in err


def test_area_constraint_needs_an_area_model(tmp_path, base, monkeypatch):
    monkeypatch.setitem(sys.modules, "arch.area", None)  # import arch.area -> ModuleNotFoundError
    spec = write(tmp_path, "spec.yaml", spec_text(extra="constraints: ['area_mm2 <= 400']\n"))
    with pytest.raises(SweepSpecError, match=r"names 'area_mm2', which needs arch.area"):
        load_spec(spec)


# --- running and the store -------------------------------------------------------------------------


def test_store_has_a_row_per_point_and_workload_with_every_column(tmp_path, base, fake_area):
    from sim import load_results, sweep

    spec = write(tmp_path, "spec.yaml", spec_text("  compute.array.rows: [4, 8]\n  memories.buf.capacity: [32 KiB, 64 KiB]\n",
                                                 workloads="  - gemm:32,32,32\n  - gemm:16,32,16\n"))
    summary = sweep(spec, tmp_path / "out")
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (8, 8, 0, 0)
    assert summary.points_per_s > 0
    df = load_results(tmp_path / "out")
    assert len(df) == 8 and df["point_id"].is_unique
    for col in ("compute.array.rows", "compute.array.rows:text", "memories.buf.capacity", "memories.buf.capacity:text",
                "workload", "spec", "model", "phase", "seq", "kv_len", "batch", "segment",
                "latency_s", "latency_cycles", "energy_pj", "macs", "area_mm2", "area.pe", "area.sram",
                "util.array", "util.dram.rw", "traffic.dram", "traffic.buf", "energy.array.mac", "energy.dram.read",
                "status", "error", "elapsed_s", "feasible"):
        assert col in df.columns, col
    assert set(df["memories.buf.capacity"]) == {32 * 1024, 64 * 1024}
    assert set(df["memories.buf.capacity:text"]) == {"32 KiB", "64 KiB"}
    assert set(df["spec"]) == {"gemm:32,32,32", "gemm:16,32,16"}
    row = df.iloc[0]
    assert row["macs"] == 32 * 32 * 32 and row["status"] == "ok"
    assert row["area_mm2"] == pytest.approx(4 * 8 * 1e-3 + 32)
    assert df.attrs["params"] == ["compute.array.rows", "memories.buf.capacity"]
    assert df.attrs["objectives"] == ["latency_s", "energy_pj"]


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, base):
    from sim import load_results, sweep

    spec = write(tmp_path, "spec.yaml", spec_text("  memories.buf.capacity: [8 B, 64 KiB]\n"))
    summary = sweep(spec, tmp_path / "out")
    assert (summary.total, summary.done, summary.failed) == (2, 1, 1)
    ok, every = load_results(tmp_path / "out"), load_results(tmp_path / "out", all=True)
    assert list(ok["memories.buf.capacity:text"]) == ["64 KiB"]
    bad = every[every["status"] == "error"].iloc[0]
    assert bad["memories.buf.capacity:text"] == "8 B"
    assert bad["error"].startswith("no mapping fits") and "\n" not in bad["error"]


def test_area_constraints_skip_points_without_running_them(tmp_path, base, fake_area):
    from sim import load_results, sweep

    spec = write(tmp_path, "spec.yaml", spec_text("  memories.buf.capacity: [32 KiB, 64 KiB]\n",
                                                 extra="constraints: ['area_mm2 <= 40', 'latency_s <= 1e-9']\n"))
    summary = sweep(spec, tmp_path / "out")
    assert (summary.done, summary.skipped) == (1, 1)
    df = load_results(tmp_path / "out", all=True).set_index("memories.buf.capacity:text")
    assert df.loc["64 KiB", "status"] == "skipped" and "violates 'area_mm2 <= 40'" in df.loc["64 KiB", "error"]
    assert df.loc["64 KiB", "area_mm2"] == pytest.approx(64.064) and df.loc["64 KiB", "latency_s"] != df.loc["64 KiB", "latency_s"]
    assert df.loc["32 KiB", "feasible"] == 0  # ran, but slower than the 1 ns constraint


def test_model_workloads_run_one_segment(tmp_path, base):
    from sim import load_results, sweep

    spec = write(tmp_path, "spec.yaml", "base: tpu-like\nworkloads:\n  - {model: gpt2-small, phase: decode, kv_len: 16, segment: head}\n")
    sweep(spec, tmp_path / "out")
    row = load_results(tmp_path / "out").iloc[0]
    assert (row["model"], row["phase"], row["kv_len"], row["segment"]) == ("gpt2-small", "decode", 16, "head")
    assert row["workload"] == "gpt2-small-decode.head" and row["macs"] > 0


def test_progress_is_one_line_on_stderr(tmp_path, base, capsys):
    from sim import sweep

    spec = write(tmp_path, "spec.yaml", spec_text())
    sweep(spec, tmp_path / "out", progress=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\r" in err and "2/2" in err and "points/s" in err and "ETA" in err


def test_cli_sweeps_and_exports(tmp_path, base, capsys):
    import pandas as pd

    from sim.cli import main

    spec = write(tmp_path, "spec.yaml", spec_text())
    csv = tmp_path / "r.csv"
    assert main(["sweep", spec, "-o", str(tmp_path / "out"), "--export", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("einsim sweep: 2/2 ok, 0 failed, 0 skipped") and out.count("\n") == 1
    assert len(pd.read_csv(csv)) == 2
    assert main(["sweep", spec, "-o", str(tmp_path / "out")]) == 2  # OUT holds a sweep: --resume or another -o
    assert "pass --resume" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trip(tmp_path, base, suffix):
    import pandas as pd

    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    from sim import export_results, load_results, sweep

    spec = write(tmp_path, "spec.yaml", spec_text("  memories.buf.capacity: [8 B, 64 KiB]\n"))
    sweep(spec, tmp_path / "out")
    path = export_results(tmp_path / "out", tmp_path / f"r{suffix}")
    back = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    want = load_results(tmp_path / "out", all=True)
    if suffix == ".csv":  # CSV has no None: all-NULL columns come back as NaN
        want = want.where(want.notna(), float("nan"))
    assert list(back.columns) == list(want.columns) and len(back) == 2
    pd.testing.assert_frame_equal(back, want, check_dtype=False)


def test_export_refuses_unknown_formats(tmp_path):
    from sim import export_results
    from sim.sweep_spec import SweepError

    with pytest.raises(SweepError, match=r"unknown export format '.xlsx'; use .csv or .parquet"):
        export_results(tmp_path, tmp_path / "r.xlsx")


# --- the mapping cache -----------------------------------------------------------------------------


def test_evaluate_cache_is_keyed_by_shape_and_architecture():
    from arch import arch_from_dict, load_arch
    from sim import evaluate

    cache: dict = {}
    small = arch_from_dict({**arch_to_dict(load_arch("tpu-like")), "name": "other-name"})
    big = arch_from_dict(dict(arch_to_dict(load_arch("tpu-like")), memories=[
        *arch_to_dict(load_arch("tpu-like"))["memories"][:1], {**arch_to_dict(load_arch("tpu-like"))["memories"][1], "capacity": "8 MiB"}]))
    first = evaluate("tpu-like", "gemm:64,64,64", cache=cache)
    assert len(cache) == 1
    again = evaluate(small, "gemm:64,64,64", cache=cache)  # only the name differs: same entry
    assert len(cache) == 1 and again.latency_cycles == first.latency_cycles
    evaluate(big, "gemm:64,64,64", cache=cache)
    assert len(cache) == 2
