"""The project's own exception: bad input or state a user can fix."""


class PalError(Exception):
    """Raised for input the user can fix; the message names the file(s) and the fix."""


class DatasetError(PalError):
    """A dataset folder that cannot be read as images + masks."""


class CheckpointError(PalError):
    """A run folder or checkpoint that cannot be trusted or resumed."""


class TrainingError(PalError):
    """Training could not go on (e.g. the loss became NaN)."""
