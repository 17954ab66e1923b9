"""Helpers shared by the command modules."""
from __future__ import annotations

from typing import Sequence

def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: do not squeeze tables to 80 columns
    return console


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
