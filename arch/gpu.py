"""The GPU schema: a GPU as SMs with tensor cores, an L2 and HBM, plus its kernel library's facts.

A GPU is not a systolic accelerator with one array: it runs *kernels*, each a grid of thread
blocks (CTAs) that SMs pick up as they free. So it has its own schema, loaded from
``arch/gpus/<name>.yaml`` (``kind: gpu``). Values with units are strings, as in architecture
YAML; ``calibration`` holds the few constants fitted on measurements (see
``bench/gpu/calibrate.py``), each named and listed in ``sources``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arch.errors import ArchError
from arch.schema import Bytes, Hertz, OptionalBandwidth
from arch.yamlio import YamlError, load_yaml_text

GpuDtype = Literal["fp8", "fp16", "bf16", "tf32"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorCore(_Model):
    """One tensor core: a small matrix unit; ``macs_per_cycle`` dense, per input type.

    ``min_tile`` is the smallest (m, n, k) one instruction computes: a matrix smaller than it
    is padded up, which is what a batch-1 decode GEMV costs on tensor cores."""

    per_sm: int = Field(gt=0)
    macs_per_cycle: dict[GpuDtype, int]
    min_tile: tuple[int, int, int]


class SM(_Model):
    """A streaming multiprocessor: tensor cores, shared memory and the register file."""

    tensor_cores: TensorCore
    shared_memory: Bytes
    registers: Bytes


class GpuMemory(_Model):
    """A memory level shared by all SMs (L2, HBM); ``bandwidth`` None: unknown, not modelled."""

    capacity: Bytes
    bandwidth: OptionalBandwidth = None


class Launch(_Model):
    """Per-kernel launch cost: ``graph`` (replayed CUDA graph) or ``eager`` (one CPU launch each)."""

    mode: Literal["graph", "eager"] = "graph"
    graph_us: float = Field(ge=0)
    eager_us: float = Field(ge=0)

    def us(self, mode: str | None = None) -> float:
        """The launch cost of one kernel in ``mode`` (default: this preset's mode)."""
        return self.eager_us if (mode or self.mode) == "eager" else self.graph_us


class GemmLibrary(_Model):
    """What the GEMM library (cuBLAS) chooses among: CTA tiles, the k step and split-K factors."""

    cta_tiles: tuple[tuple[int, int], ...]
    k_step: int = Field(gt=0)
    split_k: tuple[int, ...] = (1,)


class AttentionLibrary(_Model):
    """FlashAttention-2's forward kernels: block sizes of the plain and the split-KV kernel."""

    block_m: int = Field(gt=0)
    block_n: int = Field(gt=0)
    split_block_m: int = Field(gt=0)
    split_block_n: int = Field(gt=0)
    max_splits: int = Field(gt=0)


class Calibration(_Model):
    """Constants fitted on a named subset of the measurements (bench/gpu/calibrate.py)."""

    hbm_efficiency: float = Field(gt=0, le=1)
    kernel_ramp_us: float = Field(ge=0)
    gemm_efficiency: float = Field(gt=0, le=1)
    gemm_cta_overhead_cycles: float = Field(ge=0)
    attention_efficiency: float = Field(gt=0, le=1)
    attention_cta_overhead_cycles: float = Field(ge=0)
    elementwise_fixed_us: float = Field(ge=0)
    elementwise_efficiency: float = Field(gt=0, le=1)


class GpuArch(_Model):
    """A whole GPU: SMs, L2, HBM, clock, launch cost, its libraries' choices and calibration."""

    kind: Literal["gpu"]
    name: str
    description: str = ""
    clocks: dict[str, Hertz]
    sms: int = Field(gt=0)
    sm: SM
    l2: GpuMemory
    hbm: GpuMemory
    launch: Launch
    gemm: GemmLibrary
    attention: AttentionLibrary
    calibration: Calibration
    calibration_set: tuple[str, ...] = ()  # the measured cases the calibration was fitted on
    sources: dict[str, str] = Field(default_factory=dict)

    @property
    def clock_hz(self) -> float:
        return self.clocks["sm"]

    def sm_macs_per_cycle(self, dtype: str) -> int:
        """Dense MACs per cycle of one SM's tensor cores for ``dtype``."""
        tc = self.sm.tensor_cores
        if dtype not in tc.macs_per_cycle:
            raise ArchError(f"gpu '{self.name}' has no tensor-core rate for dtype '{dtype}' "
                            f"(has {', '.join(tc.macs_per_cycle)})", path=("sm", "tensor_cores", "macs_per_cycle"))
        return tc.per_sm * tc.macs_per_cycle[dtype]

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor-core FLOP/s at the preset's clock (the roofline's compute roof)."""
        return 2.0 * self.sms * self.sm_macs_per_cycle(dtype) * self.clock_hz

    @property
    def hbm_bytes_per_s(self) -> float:
        """The rated HBM bandwidth (the roofline's memory roof)."""
        if self.hbm.bandwidth is None:
            raise ArchError(f"gpu '{self.name}' needs an HBM bandwidth", path=("hbm", "bandwidth"))
        return self.hbm.bandwidth.bytes_per_cycle(1.0)


def _gpus_dir():
    return resources.files("arch").joinpath("gpus")


def list_gpus() -> list[tuple[str, str]]:
    """(name, description) of every shipped GPU preset, sorted by name."""
    from arch.loader import list_presets

    return list_presets("gpus")


def is_gpu(source: object) -> bool:
    """Whether ``source`` names a GPU preset or a YAML file that says ``kind: gpu``."""
    if isinstance(source, GpuArch):
        return True
    text = str(source)
    if _gpus_dir().joinpath(f"{text}.yaml").is_file():
        return True
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        try:
            data, _ = load_yaml_text(path.read_text(encoding="utf-8-sig"), name=text)
        except (YamlError, OSError, UnicodeDecodeError):
            return False
        return isinstance(data, dict) and data.get("kind") == "gpu"
    return False


def load_gpu(source: str | Path | GpuArch) -> GpuArch:
    """The GpuArch named by a GPU preset name or a YAML path; errors are one-line ArchErrors."""
    from arch.loader import load_preset_model

    return load_preset_model(source, "gpus", GpuArch, "GPU")

