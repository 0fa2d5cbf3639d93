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


class HookShapeError(MechscopeError):
    """A hook function returned a tensor of the wrong shape."""


class InputError(MechscopeError):
    """Bad input: too long a sequence, wrong dtype, empty batch, ..."""


class CheckpointError(MechscopeError):
    """A checkpoint is missing, truncated or corrupt."""


class NotApplicableError(MechscopeError):
    """An analysis does not apply to this model (e.g. positional helix on a rotary model)."""
