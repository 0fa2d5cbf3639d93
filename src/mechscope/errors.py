"""mechscope's exception types.

Every error a user can cause gets one of these, with a message that says what went wrong and
what to do about it. The CLI prints the message alone (no traceback) for these types.
"""


class MechscopeError(Exception):
    """Base class for errors that carry a user-facing message."""


class ModelLoadError(MechscopeError):
    """A model spec could not be resolved or loaded (missing path, offline hub, bad weights)."""


class UnsupportedArchitectureError(MechscopeError):
    """The HF model class has no adapter table."""


class HookNameError(MechscopeError, KeyError):
    """A hook name that the model does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InterventionError(MechscopeError):
    """An intervention cannot be applied: a hook returned the wrong kind of tensor, or selected heads
    or positions that the hook point does not have."""


class HookShapeError(InterventionError):
    """A hook function returned a tensor of the wrong shape, dtype or device."""


class BatchGrowthError(InterventionError):
    """A GrowBatch hook added rows at a block whose other inputs are per-row (e.g. a padding mask)."""


class InputError(MechscopeError):
    """Bad input: too long a sequence, wrong dtype, empty batch, ..."""


class CheckpointError(MechscopeError):
    """A checkpoint is missing, truncated or corrupt."""


class NotApplicableError(MechscopeError):
    """An analysis does not apply to this model (e.g. positional helix on a rotary model)."""
