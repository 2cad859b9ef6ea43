"""Parsers for quantities with units ("16 MiB", "400 GiB/s", "17.2 pJ", "940 MHz").

Architecture YAML states every physical quantity with its unit so that a reader never has to
guess; these parsers turn such strings into plain numbers and reject anything ambiguous
(unit-less numbers, negatives, bools) with a message fit to show a user.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

UNBOUNDED = "unbounded"

_NUMBER_UNIT = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\s\d].*?)?\s*$")

_BYTE_UNITS: dict[str, int] = {
    "B": 1, "byte": 1, "bytes": 1,
    "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
# Binary prefixes and "byte" are unambiguous in any case; SI ones are not (mB, Mb), so exact only.
_BYTE_UNITS_ANYCASE = {k.lower(): v for k, v in _BYTE_UNITS.items() if k.endswith("iB") or k.startswith("byte")}
_TIME_UNITS: dict[str, str] = {"s": "s", "sec": "s", "cycle": "cycle", "cycles": "cycle", "clk": "cycle"}
_ENERGY_UNITS: dict[str, float] = {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "µJ": 1e6}
_FREQ_UNITS: dict[str, float] = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}


def _split(v: object, what: str, example: str) -> tuple[Fraction, str]:
    """Split ``v`` into (number, unit); reject non-strings, unit-less and negative values."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"{what} {v!r} is not a {what}; write it with a unit, e.g. '{example}'")
    if isinstance(v, (int, float)):
        raise ValueError(f"{what} '{v}' needs a unit, e.g. '{_example_with(v, example)}'")
    m = _NUMBER_UNIT.match(v)
    if m is None:
        raise ValueError(f"{what} '{v}' is not a number with a unit, e.g. '{example}'")
    number, unit = Fraction(m.group(1)), (m.group(2) or "").strip()
    if not unit:
        raise ValueError(f"{what} '{v.strip()}' needs a unit, e.g. '{_example_with(m.group(1), example)}'")
    if number < 0:
        raise ValueError(f"{what} '{v.strip()}' must not be negative, e.g. '{example}'")
    return number, unit


def _example_with(number: object, example: str) -> str:
    """The example with its number replaced by the user's, so the hint reads naturally."""
    return f"{number} {example.split(' ', 1)[1]}"


def _is_unbounded(v: object) -> bool:
    return isinstance(v, str) and v.strip().lower() == UNBOUNDED


def parse_bytes(v: object) -> int | None:
    """A size such as "512 KiB", "24 MB" (SI) or "64 B" as an int of bytes; "unbounded" -> None."""
    if _is_unbounded(v):
        return None
    number, unit = _split(v, "size", "512 KiB")
    scale = _BYTE_UNITS.get(unit) or _BYTE_UNITS_ANYCASE.get(unit.lower())
    if scale is None:
        raise ValueError(f"size '{str(v).strip()}' has unknown unit '{unit}'; use one of {', '.join(_BYTE_UNITS)}")
    size = number * scale
    if size.denominator != 1:
        raise ValueError(f"size '{str(v).strip()}' is not a whole number of bytes")
    if size == 0:
        raise ValueError(f"size '{str(v).strip()}' must be positive, e.g. '512 KiB'")
    return int(size)


@dataclass(frozen=True)
class Bandwidth:
    """Bytes per second (``per="s"``) or bytes per clock cycle (``per="cycle"``)."""

    value: float
    per: Literal["s", "cycle"]

    def bytes_per_cycle(self, clock_hz: float) -> float:
        """Bytes moved per cycle of a clock at ``clock_hz``."""
        return self.value / clock_hz if self.per == "s" else self.value

    def __str__(self) -> str:
        return f"{self.value:g} B/{self.per}"


def parse_bandwidth(v: object) -> Bandwidth | None:
    """A bandwidth such as "400 GiB/s", "25.6 GB/s" or "64 B/cycle"; "unbounded" -> None."""
    if isinstance(v, Bandwidth):
        return v
    if _is_unbounded(v):
        return None
    number, unit = _split(v, "bandwidth", "400 GiB/s")
    size_unit, slash, time_unit = unit.partition("/")
    scale = _BYTE_UNITS.get(size_unit.strip()) or _BYTE_UNITS_ANYCASE.get(size_unit.strip().lower())
    per = _TIME_UNITS.get(time_unit.strip().lower())
    if not slash or scale is None or per is None:
        raise ValueError(
            f"bandwidth '{str(v).strip()}' has unknown unit '{unit}'; use bytes per s or per cycle, "
            "e.g. '400 GiB/s', '25.6 GB/s', '64 B/cycle'"
        )
    if number == 0:
        raise ValueError(f"bandwidth '{str(v).strip()}' must be positive (write 'unbounded' for no limit)")
    return Bandwidth(float(number * scale), per)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Energy:
    """Energy of one action in pJ, or per bit moved when ``per_bit``."""

    pj: float
    per_bit: bool = False

    def per_access(self, word_bits: int) -> float:
        """pJ of one access of a ``word_bits``-wide word."""
        return self.pj * word_bits if self.per_bit else self.pj

    def __str__(self) -> str:
        return f"{self.pj:g} pJ" + ("/bit" if self.per_bit else "")


def parse_energy(v: object) -> Energy:
    """An energy such as "17.2 pJ", "0.5 nJ", "28 fJ" or "3.9 pJ/bit"."""
    if isinstance(v, Energy):
        return v
    number, unit = _split(v, "energy", "17.2 pJ")
    base, slash, per = unit.partition("/")
    scale = _ENERGY_UNITS.get(base.strip())
    if scale is None or (slash and per.strip() != "bit"):
        raise ValueError(
            f"energy '{str(v).strip()}' has unknown unit '{unit}'; use fJ, pJ, nJ or uJ, optionally per bit, "
            "e.g. '17.2 pJ' or '3.9 pJ/bit'"
        )
    return Energy(float(number) * scale, per_bit=bool(slash))


def parse_frequency(v: object) -> float:
    """A frequency such as "940 MHz", "1 GHz" or "1e9 Hz", in Hz."""
    number, unit = _split(v, "frequency", "940 MHz")
    scale = _FREQ_UNITS.get(unit.lower())
    if scale is None:
        raise ValueError(f"frequency '{str(v).strip()}' has unknown unit '{unit}'; use Hz, kHz, MHz or GHz, e.g. '940 MHz'")
    hz = float(number) * scale
    if hz <= 0 or not math.isfinite(hz):
        raise ValueError(f"frequency '{str(v).strip()}' must be positive, e.g. '940 MHz'")
    return hz
