"""arch: what the workload runs on. The architecture schema, its YAML loader, presets and importers."""

from arch.errors import ArchError
from arch.loader import arch_from_dict, list_presets, load_arch
from arch.schema import ROLES, Architecture, ComputeArray, Link, Memory, Op, Port
from arch.yamlio import YamlError, load_yaml

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
    "list_presets",
    "ArchError",
    "load_yaml",
    "YamlError",
]
