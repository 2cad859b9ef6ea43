"""The area model: sourced per-component constants, monotone in size, scaled by node."""

from __future__ import annotations

import math

import pytest

from arch import load_arch
from arch.area import area_breakdown, pe_area_mm2, phy_area_mm2, sram_area_mm2
from conftest import make_arch


def test_pe_area_is_horowitz_multiplier_plus_adder_with_overhead():
    assert pe_area_mm2("int8") == pytest.approx((282 + 137) * 1.3e-6)
    assert pe_area_mm2("fp16") == pytest.approx((1640 + 4184) * 1.3e-6)
    assert pe_area_mm2("fp32") > pe_area_mm2("bf16") > pe_area_mm2("int8")


def test_sram_area_from_bitcell():
    one_mib = sram_area_mm2(1 << 20)
    assert one_mib == pytest.approx(8 * 2**20 * 0.346 / 0.7 * 1e-6)
    assert sram_area_mm2(2 << 20) == pytest.approx(2 * one_mib)
    assert sram_area_mm2(1 << 20, ports=2) == pytest.approx(1.5 * one_mib)


def test_node_scaling_is_quadratic():
    assert pe_area_mm2("int8", node_nm=22.5) == pytest.approx(pe_area_mm2("int8") / 4)
    assert phy_area_mm2(256e9) == pytest.approx(256 * 0.06)


def test_breakdown_sums_and_grows_with_the_design():
    small = area_breakdown(make_arch(8, 8, capacity="64 KiB", dram_bw="16 GB/s"))
    big = area_breakdown(make_arch(16, 16, capacity="256 KiB", dram_bw="64 GB/s"))
    assert small["total"] == pytest.approx(sum(v for k, v in small.items() if k != "total"))
    for key in ("array", "buffer", "dram_phy", "total"):
        assert big[key] > small[key]
    assert big["array"] == pytest.approx(4 * small["array"])


@pytest.mark.parametrize("preset", ["tpu-like", "edge-32x32"])
def test_presets_have_finite_plausible_area(preset):
    area = area_breakdown(load_arch(preset))
    assert all(math.isfinite(v) and v >= 0 for v in area.values())
    assert 1 < area["total"] < 1000  # mm² at 45 nm
