"""Registries, spec loading and plugin discovery."""
from cytoreg.registry.core import Entry, Registry

__all__ = ["Entry", "Registry"]
