"""Authoring support: the JSON Schema matches what the loader accepts; validate explains every error."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from arch import json_schema, list_presets, validate_arch_file
from arch.loader import _presets_dir


@pytest.mark.parametrize("preset", [name for name, _ in list_presets()])
def test_presets_validate_against_the_json_schema(preset):
    data = yaml.safe_load(_presets_dir().joinpath(f"{preset}.yaml").read_text())
    jsonschema.validate(data, json_schema())


@pytest.mark.parametrize("bad", [
    {"memories[0].capacity": "512"},        # unit-less
    {"compute[0].rows": "many"},            # not an integer
    {"compute[0].colour": "red"},           # unknown key
    {"clocks.core": "fast"},                # no unit
])
def test_schema_rejects_what_the_loader_rejects(bad):
    data = yaml.safe_load(_presets_dir().joinpath("edge-32x32.yaml").read_text())
    (path, value), = bad.items()
    head, key = path.rsplit(".", 1)
    node = data
    for part in head.replace("]", "").split("."):
        name, *index = part.split("[")
        node = node[name]
        for i in index:
            node = node[int(i)]
    node[key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema())


def test_validate_lists_every_error_with_lines(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "name: x\n"
        "clocks: {core: 1 GHz}\n"
        "memories:\n"
        "  - name: dram\n"
        "    capacity: 512\n"          # line 5: unit-less
        "compute:\n"
        "  - name: a\n"
        "    rows: -4\n"               # line 8: negative
        "    cols: 8\n"
        "    colour: red\n")           # line 10: unknown key
    errors = validate_arch_file(path)
    text = [str(e) for e in errors]
    assert len(errors) == 3, text
    assert [e.line for e in errors] == [5, 8, 10]
    assert "needs a unit" in text[0] and "rows" in text[1] and "unknown key 'colour'" in text[2]


def test_validate_accepts_a_good_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(_presets_dir().joinpath("tpu-like.yaml").read_text())
    assert validate_arch_file(path) == []


def test_cli_schema_and_validate(tmp_path, capsys):
    import json

    from sim.cli import main

    out = tmp_path / "arch.schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "einsim architecture"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclocks: {core: 1 GHz}\nmemories:\n  - name: dram\n    capacity: 512\n"
                   "compute:\n  - name: a\n    rows: 0\n    cols: 8\n")
    capsys.readouterr()
    assert main(["validate", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("einsim: error: ") for line in lines)
    assert main(["validate", str(_presets_dir().joinpath("edge-32x32.yaml"))]) == 0
