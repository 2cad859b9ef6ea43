"""Unit parsing: sizes, bandwidths, energies and frequencies, good and bad."""

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arch.errors import ArchError
from arch.units import (
    Bandwidth,
    Energy,
    parse_bandwidth,
    parse_bytes,
    parse_energy,
    parse_frequency,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("16 MiB", 16 * 2**20),
        ("512 KiB", 512 * 1024),
        ("1.5 GiB", 3 * 2**29),
        ("24 MB", 24_000_000),
        ("25.6 MB", 25_600_000),
        ("64 B", 64),
        ("64 bytes", 64),
        ("1 byte", 1),
        ("2kB", 2000),
        ("  4   mib ", 4 * 2**20),
        ("1e3 B", 1000),
        ("unbounded", None),
        ("Unbounded", None),
    ],
)
def test_parse_bytes_good(text, expected):
    assert parse_bytes(text) == expected
    if expected is not None:
        assert type(parse_bytes(text)) is int


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("512", "needs a unit, e.g. '512 KiB'"),
        (512, "needs a unit, e.g. '512 KiB'"),
        (1.5, "needs a unit"),
        ("-4 KiB", "must not be negative"),
        ("0 B", "must be positive"),
        ("0.5 B", "not a whole number of bytes"),
        ("3 furlongs", "unknown unit 'furlongs'"),
        ("12 Mb", "unknown unit 'Mb'"),
        ("lots", "not a number with a unit"),
        (True, "not a size"),
        (None, "not a size"),
        ([1, "KiB"], "not a size"),
    ],
)
def test_parse_bytes_bad(value, fragment):
    with pytest.raises(ValueError) as exc:
        parse_bytes(value)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


@given(st.integers(min_value=1, max_value=2**40))
def test_parse_bytes_roundtrips_integers(n):
    assert parse_bytes(f"{n} B") == n
    assert parse_bytes(f"{n} KiB") == n * 1024


@pytest.mark.parametrize(
    "text, value, per",
    [
        ("400 GiB/s", 400 * 2**30, "s"),
        ("900 GB/s", 900e9, "s"),
        ("25.6 GB/s", 25.6e9, "s"),
        ("64 B/cycle", 64, "cycle"),
        ("16 bytes/cycle", 16, "cycle"),
        ("8 KiB / cycle", 8192, "cycle"),
    ],
)
def test_parse_bandwidth_good(text, value, per):
    bw = parse_bandwidth(text)
    assert bw == Bandwidth(pytest.approx(value), per)


def test_bandwidth_pass_through_unbounded_and_per_cycle():
    bw = Bandwidth(64.0, "cycle")
    assert parse_bandwidth(bw) is bw
    assert parse_bandwidth("unbounded") is None
    assert parse_bandwidth("400 GB/s").bytes_per_cycle(1e9) == pytest.approx(400.0)
    assert parse_bandwidth("64 B/cycle").bytes_per_cycle(2e9) == 64.0


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("400", "needs a unit, e.g. '400 GiB/s'"),
        (400, "needs a unit"),
        ("400 GiB", "unknown unit"),
        ("400 GiB/fortnight", "unknown unit"),
        ("400 Gb/s", "unknown unit"),
        ("-1 GB/s", "must not be negative"),
        ("0 GB/s", "must be positive"),
        (False, "not a bandwidth"),
    ],
)
def test_parse_bandwidth_bad(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_bandwidth(value)


@pytest.mark.parametrize(
    "text, pj, per_bit",
    [
        ("17.2 pJ", 17.2, False),
        ("0.5 nJ", 500.0, False),
        ("28 fJ", 0.028, False),
        ("3.9 pJ/bit", 3.9, True),
        ("0 pJ", 0.0, False),
    ],
)
def test_parse_energy_good(text, pj, per_bit):
    e = parse_energy(text)
    assert e.pj == pytest.approx(pj) and e.per_bit is per_bit


def test_energy_per_access_and_pass_through():
    assert Energy(3.9, per_bit=True).per_access(4096) == pytest.approx(3.9 * 4096)
    assert Energy(485.0).per_access(4096) == 485.0
    e = Energy(1.0)
    assert parse_energy(e) is e


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("17.2", "needs a unit, e.g. '17.2 pJ'"),
        (17.2, "needs a unit"),
        ("-1 pJ", "must not be negative"),
        ("3 pJ/byte", "unknown unit"),
        ("3 kcal", "unknown unit"),
        (True, "not a energy"),
    ],
)
def test_parse_energy_bad(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_energy(value)


@pytest.mark.parametrize(
    "text, hz",
    [("940 MHz", 940e6), ("1 GHz", 1e9), ("700 kHz", 7e5), ("1e9 Hz", 1e9), ("1.5 ghz", 1.5e9)],
)
def test_parse_frequency_good(text, hz):
    assert parse_frequency(text) == pytest.approx(hz)


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("940", "needs a unit, e.g. '940 MHz'"),
        (1e9, "needs a unit"),
        ("0 MHz", "must be positive"),
        ("-1 GHz", "must not be negative"),
        ("1 GB", "unknown unit"),
        (True, "not a frequency"),
    ],
)
def test_parse_frequency_bad(value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_frequency(value)


def test_arch_error_formats_one_line_and_survives_pickling():
    e = ArchError("unknown key 'rowz'", file="a.yaml", line=7, path=("compute", 0, "rowz"))
    assert str(e) == "a.yaml:7: compute[0].rowz: unknown key 'rowz'"
    assert str(ArchError("bad", path="clocks.core")) == "clocks.core: bad"
    assert str(ArchError("bad", file="a.yaml")) == "a.yaml: bad"
    back = pickle.loads(pickle.dumps(e))
    assert (back.file, back.line, back.path, back.problem) == (e.file, e.line, e.path, e.problem)
    assert isinstance(back, ValueError)
