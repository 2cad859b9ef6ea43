"""The DRAM device schema: organization, timing in clock cycles, command energies, optional PIM units.

A command-level DRAM model (``sim.dram``) needs what a datasheet or a public simulator preset
gives: how the device is organised (channels, pseudo channels, ranks, bank groups, banks, rows,
columns), its timing parameters in cycles of the command clock tCK, the energy of each
command, and, for processing-in-memory devices, the units next to the banks. Loaded from
``arch/dram/<name>.yaml`` (``kind: dram``). As in the other schemas every preset value has an
entry in ``sources``; values nobody publishes are ``null`` with an ``unknown:`` source and the
simulator asks for them by name (``DramSpec.need``), so a missing value is a one-line error,
never a silent default.

Units: timing parameters ``nX`` are whole tCK cycles; ``tCK_ps`` is picoseconds; energies are
pJ per command (``*_pj``) and mW for the background (``*_mw``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from arch.errors import ArchError
from arch.schema import Hertz

Cycles = Annotated[int, Field(ge=0)]
"""A duration in whole cycles of the command clock tCK."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organization(_Model):
    """How one device is organised. A *channel* is independent (own command bus, own banks); a
    channel may be split into ``pseudo_channels`` (HBM) that share its command bus but have their
    own banks and data bus; each pseudo channel (or the channel, when there is none) holds
    ``ranks`` x ``bankgroups`` x ``banks_per_group`` banks.

    ``columns`` counts the RD/WR bursts one row holds (row bytes = columns x column_bytes), not
    the datasheet's column addresses; ``column_bytes`` is what one burst moves on one pseudo
    channel's data bus; ``data_width_bits`` is the data pins of the whole channel."""

    channels: int = Field(gt=0)  # per device: HBM stack, GDDR chip, DDR DIMM
    pseudo_channels: int = Field(1, gt=0)  # per channel; 1 if the standard has none
    ranks: int = Field(1, gt=0)  # per pseudo channel
    bankgroups: int = Field(gt=0)
    banks_per_group: int = Field(gt=0)
    rows: int = Field(gt=0)
    columns: int = Field(gt=0)
    column_bytes: int = Field(gt=0)
    data_width_bits: int = Field(gt=0)
    data_rate_gbps: float = Field(gt=0)  # transfers per second per data pin, in Gb/s
    # HBM has separate row (ACT, PRE, REF) and column (RD, WR) command buses: one of each per cycle
    command_bus: Literal["shared", "row-column"] = "shared"

    @property
    def banks_per_rank(self) -> int:
        return self.bankgroups * self.banks_per_group


class Timing(_Model):
    """Timing parameters in tCK cycles (``tCK_ps`` in picoseconds), named as in Ramulator.

    ``nRCD`` may stand for both ``nRCDRD`` and ``nRCDWR``. ``nCCDS_WR``/``nCCDL_WR`` are DDR5's
    separate write-to-write spacings (absent: the read values apply). ``nRFCpb``/``nRREFD`` belong
    to per-bank refresh, ``nPPD`` to standards with a precharge-to-precharge delay and ``nRTRS``
    (rank-to-rank data-bus switch) to devices with more than one rank; ``null`` where the
    standard has no such parameter."""

    tCK_ps: float = Field(gt=0)
    nBL: Cycles | None
    nCL: Cycles | None
    nCWL: Cycles | None
    nRCD: Cycles | None = None
    nRCDRD: Cycles | None = None
    nRCDWR: Cycles | None = None
    nRP: Cycles | None
    nRAS: Cycles | None
    nRC: Cycles | None
    nWR: Cycles | None
    nRTP: Cycles | None
    nCCDS: Cycles | None
    nCCDL: Cycles | None
    nCCDS_WR: Cycles | None = None
    nCCDL_WR: Cycles | None = None
    nRRDS: Cycles | None
    nRRDL: Cycles | None
    nWTRS: Cycles | None
    nWTRL: Cycles | None
    nRTW: Cycles | None
    nFAW: Cycles | None
    nREFI: Cycles | None
    nRFC: Cycles | None
    nRFCpb: Cycles | None = None
    nRREFD: Cycles | None = None
    nPPD: Cycles | None = None
    nRTRS: Cycles | None = None

    @model_validator(mode="after")
    def _rcd_once(self) -> Timing:
        if self.nRCD is not None and (self.nRCDRD is not None or self.nRCDWR is not None):
            raise ArchError("give either nRCD or nRCDRD and nRCDWR, not both", path=("nRCD",))
        if self.nRCD is None and (self.nRCDRD is None or self.nRCDWR is None):
            raise ArchError("missing nRCD (or both nRCDRD and nRCDWR)", path=("nRCD",))
        return self


class Energy(_Model):
    """Energy of each command: ``act_pre_pj`` one ACT with its PRE (per bank), ``rd_pj``/``wr_pj``
    one burst of column_bytes, ``ref_pj`` one all-bank REF (of a rank), ``refpb_pj`` one REFpb;
    background power per rank of a channel (all its pseudo channels) while some bank is open
    (``act_standby_mw``) or all are closed (``pre_standby_mw``); PIM devices add ``mac_pj`` (one
    column read and multiplied by a PIM unit) and ``gb_pj`` (one WRgb or RDmac burst).
    ``null``: unknown."""

    act_pre_pj: float | None = Field(ge=0)
    rd_pj: float | None = Field(ge=0)
    wr_pj: float | None = Field(ge=0)
    ref_pj: float | None = Field(ge=0)
    refpb_pj: float | None = Field(ge=0)
    act_standby_mw: float | None = Field(ge=0)
    pre_standby_mw: float | None = Field(ge=0)
    mac_pj: float | None = Field(None, ge=0)
    gb_pj: float | None = Field(None, ge=0)


class PimTiming(_Model):
    """PIM command timing in tCK cycles: ``nCCDAB`` MACab to MACab, ``nRCDMAC`` ACT/ACTab to a MAC
    in that bank, ``nCLREG`` RDmac to its data on the bus, ``nCWLGB`` WRgb to its data."""

    nCCDAB: Cycles | None
    nRCDMAC: Cycles | None
    nCLREG: Cycles | None
    nCWLGB: Cycles | None


class Pim(_Model):
    """Processing units beside the banks: one unit per ``banks_per_unit`` banks (AiM 1, HBM-PIM
    2), each ``lanes`` wide multiply-accumulate of ``dtype`` at ``clock``; one MACab makes every
    unit read one column (column_bytes) of an open row and MAC it with the global buffer."""

    banks_per_unit: int = Field(1, gt=0)
    lanes: int = Field(gt=0)
    dtype: Literal["bf16", "fp16", "int8", "fp32"]
    clock: Hertz
    global_buffer_bytes: int | None = Field(gt=0)
    timing: PimTiming


class DramSpec(_Model):
    """One DRAM device (a speed bin of a standard, or a PIM device built on one)."""

    kind: Literal["dram"]
    name: str
    standard: Literal["DDR4", "DDR5", "GDDR6", "HBM2", "HBM3"]
    description: str = ""
    organization: Organization
    timing: Timing
    energy: Energy
    pim: Pim | None = None
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> DramSpec:
        org, t = self.organization, self.timing
        if org.data_width_bits % org.pseudo_channels:
            raise ArchError(f"data_width_bits ({org.data_width_bits}) must split evenly into "
                            f"{org.pseudo_channels} pseudo channels", path=("organization", "data_width_bits"))
        if t.nBL is not None:
            beats = t.nBL * t.tCK_ps * org.data_rate_gbps / 1000.0
            whole = round(beats)
            expect = org.data_width_bits // org.pseudo_channels * whole // 8
            if whole == 0 or abs(beats - whole) > 0.02 * whole or expect != org.column_bytes:
                raise ArchError(
                    f"column_bytes {org.column_bytes} does not match the burst: nBL {t.nBL} x tCK "
                    f"{t.tCK_ps} ps x {org.data_rate_gbps} Gb/s = {beats:.2f} beats on "
                    f"{org.data_width_bits // org.pseudo_channels} pins = {expect} bytes",
                    path=("organization", "column_bytes"))
        if org.ranks > 1 and t.nRTRS is None:
            raise ArchError("a device with more than one rank needs nRTRS (rank-to-rank switch)",
                            path=("timing", "nRTRS"))
        if t.nRFCpb is not None and t.nRREFD is None:
            raise ArchError("per-bank refresh (nRFCpb) needs nRREFD", path=("timing", "nRREFD"))
        if self.pim is not None and org.banks_per_rank % self.pim.banks_per_unit:
            raise ArchError(f"{org.banks_per_rank} banks do not split into units of {self.pim.banks_per_unit}",
                            path=("pim", "banks_per_unit"))
        return self

    # ---- derived quantities -------------------------------------------------------------
    @property
    def tck_s(self) -> float:
        return self.timing.tCK_ps * 1e-12

    @property
    def peak_bandwidth(self) -> float:
        """Bytes/s of one channel's data pins: data_width_bits x data_rate / 8 (e.g. HBM2 32 GB/s)."""
        org = self.organization
        return org.data_width_bits * org.data_rate_gbps * 1e9 / 8

    @property
    def pim_units_per_channel(self) -> int:
        """PIM units in one channel (all its pseudo channels and ranks)."""
        org = self.organization
        return org.pseudo_channels * org.ranks * org.banks_per_rank // self.need_pim().banks_per_unit

    @property
    def pim_peak_flops(self) -> float:
        """FLOP/s of the whole device's PIM units at their clock: units x lanes x 2 x clock."""
        pim = self.need_pim()
        return self.organization.channels * self.pim_units_per_channel * pim.lanes * 2 * pim.clock

    def need_pim(self) -> Pim:
        if self.pim is None:
            raise ArchError(f"'{self.name}' has no PIM units (no 'pim:' block)")
        return self.pim

    def need(self, path: str) -> Any:
        """The value at dotted ``path`` (``timing.nRFCpb``, ``energy.rd_pj``), or a one-line error
        saying it is unknown (with its source) and how to give it."""
        obj: Any = self
        for part in path.split("."):
            if not isinstance(obj, BaseModel) or part not in type(obj).model_fields:
                raise ArchError(f"'{self.name}' has no setting '{path}'", path=path)
            obj = getattr(obj, part)
        if obj is None:
            why = self.sources.get(path, "not given")
            raise ArchError(f"'{self.name}': {path} is unknown ({why}); give a value, e.g. "
                            f"dram_with_values(spec, {{'{path}': ...}})")
        return obj

    def cycles(self) -> TimingCycles:
        """The timing resolved into plain ints (nRCD split, write CCDs filled in); a one-line error
        for a needed value that is null."""
        t = self.timing

        def need(name: str) -> int:
            return self.need(f"timing.{name}")

        rcd_rd = t.nRCD if t.nRCD is not None else need("nRCDRD")
        rcd_wr = t.nRCD if t.nRCD is not None else need("nRCDWR")
        pim = self.pim.timing if self.pim is not None else None
        return TimingCycles(
            BL=need("nBL"), CL=need("nCL"), CWL=need("nCWL"), RCDRD=rcd_rd, RCDWR=rcd_wr, RP=need("nRP"),
            RAS=need("nRAS"), RC=need("nRC"), WR=need("nWR"), RTP=need("nRTP"), CCDS=need("nCCDS"),
            CCDL=need("nCCDL"), CCDS_WR=t.nCCDS_WR if t.nCCDS_WR is not None else need("nCCDS"),
            CCDL_WR=t.nCCDL_WR if t.nCCDL_WR is not None else need("nCCDL"), RRDS=need("nRRDS"),
            RRDL=need("nRRDL"), WTRS=need("nWTRS"), WTRL=need("nWTRL"), RTW=need("nRTW"), FAW=need("nFAW"),
            REFI=need("nREFI"), RFC=need("nRFC"), RFCpb=t.nRFCpb, RREFD=t.nRREFD or 0, PPD=t.nPPD or 0,
            RTRS=t.nRTRS or 0,
            CCDAB=self.need("pim.timing.nCCDAB") if pim else None,
            RCDMAC=self.need("pim.timing.nRCDMAC") if pim else None,
            CLREG=self.need("pim.timing.nCLREG") if pim else None,
            CWLGB=self.need("pim.timing.nCWLGB") if pim else None,
        )


@dataclass(frozen=True)
class TimingCycles:
    """A DramSpec's timing as plain ints (what the engine and the checker compute with). ``RFCpb``
    is None where the device has no per-bank refresh; ``RREFD``, ``PPD``, ``RTRS`` are 0 where
    the standard has no such constraint; the PIM values are None on a device without PIM."""

    BL: int
    CL: int
    CWL: int
    RCDRD: int
    RCDWR: int
    RP: int
    RAS: int
    RC: int
    WR: int
    RTP: int
    CCDS: int
    CCDL: int
    CCDS_WR: int
    CCDL_WR: int
    RRDS: int
    RRDL: int
    WTRS: int
    WTRL: int
    RTW: int
    FAW: int
    REFI: int
    RFC: int
    RFCpb: int | None
    RREFD: int
    PPD: int
    RTRS: int
    CCDAB: int | None
    RCDMAC: int | None
    CLREG: int | None
    CWLGB: int | None

    @property
    def write_to_precharge(self) -> int:
        """WR to PRE of that bank: the write data (nCWL + nBL) plus write recovery nWR."""
        return self.CWL + self.BL + self.WR


def dram_with_values(spec: DramSpec, values: dict[str, Any]) -> DramSpec:
    """A copy of ``spec`` with dotted ``values`` set (``"organization.ranks": 2``,
    ``"energy.mac_pj": 10``), validated like YAML; their sources say they were given."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    for path, v in values.items():
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ArchError(f"'{spec.name}' has no setting '{path}'", path=path)
        node[last] = v
    data["sources"] = {**spec.sources, **{k: "given: a value set for this run" for k in values}}
    if data.get("pim") and "clock" in data["pim"]:
        data["pim"]["clock"] = f"{data['pim']['clock']} Hz"
    try:
        return DramSpec.model_validate(data)
    except ValidationError as e:
        from arch.loader import _to_arch_error

        raise _to_arch_error(e, None, {}, DramSpec) from None


def list_dram() -> list[tuple[str, str]]:
    """(name, description) of every shipped DRAM preset, sorted by name."""
    from arch.loader import list_presets

    return list_presets("dram")


def load_dram(source: str | Path | DramSpec) -> DramSpec:
    """The DramSpec named by a preset name (hbm2, ddr4-3200, aim, ...) or a YAML path; errors are
    one-line ArchErrors with ``file:line``."""
    from arch.loader import load_preset_model

    return load_preset_model(source, "dram", DramSpec, "DRAM")


def idd_energies(*, vdd: float, idd0: float, idd2n: float, idd3n: float, idd4r: float, idd4w: float,
                 idd5ab: float, tck_ns: float, n_ras: int, n_rp: int, n_rfc: int, burst_cycles: float,
                 devices: float, burst_share: float = 1.0) -> dict[str, float]:
    """Per-command energies from datasheet currents, by the formulas DRAMsim3 uses
    (``Config::InitPowerParams``, after Micron TN-41-01): V x mA x ns = pJ.

    ACT+PRE = VDD (IDD0 tRC - IDD3N tRAS - IDD2N tRP) with tRC = tRAS + tRP; RD = VDD (IDD4R -
    IDD3N) t_burst; WR likewise with IDD4W; REF = VDD (IDD5AB - IDD3N) tRFC; background VDD IDD3N
    (some bank open) and VDD IDD2N (all closed), in mW. Times are cycles x ``tck_ns``; every
    term is for ``devices`` chips; ``burst_share`` scales RD/WR when one burst of the modelled
    device moves a fraction of the burst the currents were measured on (HBM2 pseudo channel: 1/2).
    DRAMsim3 leaves the cycles unconverted; here they are converted to ns, so the results are pJ."""
    t_rc = (n_ras + n_rp) * tck_ns
    act = vdd * (idd0 * t_rc - (idd3n * n_ras * tck_ns + idd2n * n_rp * tck_ns)) * devices
    burst = burst_cycles * tck_ns
    return {
        "act_pre_pj": act,
        "rd_pj": vdd * (idd4r - idd3n) * burst * devices * burst_share,
        "wr_pj": vdd * (idd4w - idd3n) * burst * devices * burst_share,
        "ref_pj": vdd * (idd5ab - idd3n) * n_rfc * tck_ns * devices,
        "act_standby_mw": vdd * idd3n * devices,
        "pre_standby_mw": vdd * idd2n * devices,
    }
