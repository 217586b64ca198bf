class ConversionError(ValueError):
    """A weights file that cannot be imported or exported; the message names the file and why."""


class UnsafeCheckpointError(ConversionError):
    """A pickle that would run code or build objects other than tensors when loaded."""
