"""Command-level DRAM: one channel's banks, timing and data buses, with PIM commands.

``run_requests`` serves read/write requests with a FR-FCFS controller, ``run_program`` issues an
in-order command list (PIM kernels); both return a :class:`DramRun` with the command trace.
``check_trace`` verifies a trace against every timing and bank-state rule, independently of
the engine. Devices come from ``arch.dram.load_dram`` (``arch/dram/*.yaml``).
"""

from sim.dram.checker import check_trace
from sim.dram.engine import (DEFAULT_MAPPING, AddressMap, Command, DramError, DramRun, Location, Request,
                             command_energy, run_program, run_requests)

__all__ = ["AddressMap", "Command", "DEFAULT_MAPPING", "DramError", "DramRun", "Location", "Request",
           "check_trace", "command_energy", "run_program", "run_requests"]
