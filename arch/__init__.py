"""arch: what the workload runs on. The architecture schema, its YAML loader, presets and importers."""

from arch.errors import ArchError
from arch.loader import arch_from_dict, list_presets, load_arch, validate_arch_file
from arch.schema import ROLES, Architecture, ComputeArray, Link, Memory, Op, Port
from arch.yamlio import YamlError, load_yaml


def json_schema() -> dict:
    """The JSON Schema of architecture YAML (for editors' autocompletion and checking).

    Values with units are strings in YAML ("16 MiB"); the schema says so instead of showing
    the parsed numbers."""
    schema = Architecture.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "einsim architecture"
    return schema

__all__ = [
    "Architecture",
    "Memory",
    "ComputeArray",
    "Port",
    "Op",
    "Link",
    "ROLES",
    "load_arch",
    "arch_from_dict",
    "validate_arch_file",
    "json_schema",
    "list_presets",
    "ArchError",
    "load_yaml",
    "YamlError",
]
