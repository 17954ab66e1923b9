"""User-facing errors.

Every error a user can trigger is a :class:`CytoregError` whose message names the file,
field or sample at fault and what would fix it. The CLI prints these without a traceback.
"""
from __future__ import annotations


class CytoregError(Exception):
    """An error caused by user input (spec, data, configuration); printed without traceback."""


class SpecError(CytoregError):
    """One or more problems in spec files; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RegistryError(CytoregError):
    """Unknown or duplicate names in a registry."""


class DataError(CytoregError):
    """A dataset that is missing, malformed or unreadable."""


class ModelLoadError(CytoregError):
    """Model weights or packages that cannot be found or loaded."""


class IncompatibleError(CytoregError):
    """A task × model pairing that cannot work (e.g. a generative-only task with a CLIP model)."""
