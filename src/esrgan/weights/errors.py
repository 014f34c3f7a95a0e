"""The one exception type of weights I/O."""

from __future__ import annotations


class WeightsError(ValueError):
    """A weights file (or registered model) cannot be used; the message names the file and the reason."""
