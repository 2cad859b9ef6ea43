"""The ``einsim`` command line.

Bad input never shows a traceback: it prints one line, ``einsim: error: <what> (<where>)``,
and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE_ERROR, f"einsim: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="einsim", description="Einsum cascades -> mapping -> event-driven simulation of accelerators.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="map and simulate a workload on an architecture")
    run.add_argument("--arch", required=True, help="preset name, architecture YAML, or SCALE-Sim .cfg")
    run.add_argument("--workload", required=True, help="gemm:M,N,K[:dtype], a cascade YAML, or a SCALE-Sim topology CSV")
    run.add_argument("--mapping", help="mapping YAML to simulate instead of the default mapper's choice")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace of the tile events")
    run.add_argument("--show-mapping", action="store_true", help="print each Einsum's loop nest")

    sub.add_parser("presets", help="list the built-in architecture presets")
    return p


def _run(args) -> int:
    from sim.run import evaluate
    from sim.trace import write_trace

    result = evaluate(args.arch, args.workload, mappings=args.mapping, trace=bool(args.trace))
    if args.trace:
        write_trace(result, args.trace)
    if args.json:
        print(result.to_json())
    else:
        print(result.table())
        if args.show_mapping:
            for e in result.einsums:
                print(e.mapping.describe())
    return 0


def _presets(_args) -> int:
    from arch import list_presets

    for name, description in list_presets():
        print(f"{name:<16} {description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``einsim`` console script."""
    args = _parser().parse_args(argv)
    from arch import ArchError, YamlError
    from mappers import MappingError
    from sim.errors import InputError
    from workloads import WorkloadError

    try:
        return {"run": _run, "presets": _presets}[args.command](args)
    except (ArchError, YamlError, WorkloadError, MappingError, InputError) as err:
        print(f"einsim: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as err:
        print(f"einsim: error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
