"""The error every training failure the user can act on is reported as."""


class TrainingError(RuntimeError):
    """The run cannot start or continue; the message is one line meant for the user."""
