"""The error the front doors raise for bad input that no lower layer owns (files, specs)."""


class InputError(ValueError):
    """Bad input; the message is one line naming what is wrong and where."""


class SimulationError(RuntimeError):
    """A simulation could not produce an exact answer (e.g. no periodic state to extrapolate)."""
