"""The README's promises: its architecture example loads, and CI runs its test command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from arch import arch_from_dict

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_architecture_example_loads():
    block = next(b for b in yaml_blocks() if b.startswith("name: my-array"))
    data = yaml.safe_load(block)
    data["sources"] = {}
    arch = arch_from_dict(data)
    assert arch.unit().op_cost("exp") == (7, 6 * 0.3 + 0.1)


def test_cascade_example_runs():
    from sim import evaluate
    from workloads import Cascade

    block = next(b for b in yaml_blocks() if b.startswith("name: mm"))
    result = evaluate("tpu-like", Cascade.from_dict(yaml.safe_load(block)))
    assert result.macs == 512 * 768 * 768


def test_ci_runs_the_readme_test_command():
    script = ROOT / ".ci" / "run"
    extracted = subprocess.run(
        ["awk", "/<!-- test-command:/ {armed=1; next} armed && /^```bash/ {getline; print; exit}", str(ROOT / "README.md")],
        capture_output=True, text=True, check=True).stdout.strip()
    assert extracted.endswith("python -m pytest -q")
    assert "pip install '.[test]'" in extracted
    assert "awk '/<!-- test-command:/" in script.read_text()
