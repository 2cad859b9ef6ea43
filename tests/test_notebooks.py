"""The notebooks run top to bottom in a fresh kernel and save every figure they promise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
MIN_PNG_BYTES = 1024

EXPECTED = {
    "quickstart.ipynb": [
        "energy_bert-base_tpu-like.png",
        "energy_bert-base_edge-32x32.png",
        "roofline_bert-base_tpu-like.png",
        "roofline_llama2-7b_tpu-like.png",
        "timeline_gemm_edge-32x32.png",
    ],
    "dram_patterns.ipynb": ["dram_patterns_bandwidth.png", "dram_patterns_efficiency.png"],
    "fusemax.ipynb": ["fusemax_utilization.png", "fusemax_speedup.png"],
    "sn40l_coe.ipynb": ["coe_switching.png", "coe_footprint.png", "coe_stream.png", "fusion_sensitivity.png"],
    "sweep_systolic.ipynb": [
        "pareto_latency_energy_bert-base.png",
        "pareto_latency_energy_llama2-7b.png",
        "pareto_latency_energy_area_bert-base.png",
        "pareto_latency_energy_area_llama2-7b.png",
    ],
}


def execute(name: str, workdir: Path) -> float:
    """Run notebook ``name`` in a python3 kernel with ``workdir`` as its folder; return the seconds it took."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(workdir)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell {cell.id} has outputs"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_saves_figures(name, tmp_path, monkeypatch):
    out = tmp_path / "figures"
    monkeypatch.setenv("EINSIM_NB_OUT", str(out))
    execute(name, tmp_path)
    for png in EXPECTED[name]:
        path = out / png
        assert path.is_file(), f"{name} did not save {png} (saved: {sorted(p.name for p in out.glob('*'))})"
        assert path.stat().st_size > MIN_PNG_BYTES, f"{png} is only {path.stat().st_size} bytes"
