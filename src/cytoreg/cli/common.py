"""Helpers shared by the command modules.

Everything the CLI prints is text, never rich markup: consoles are made with ``markup=False``
(a label ``Baso[/]phil`` or a path with ``[blast]`` in it prints as written), and colour is
added with :func:`styled` only around our own words."""
from __future__ import annotations

from typing import Sequence


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)
    console.on_broken_pipe = _broken_pipe  # rich would exit 1; the error boundary exits 141 quietly
    if not console.is_terminal:
        console.width = max(console.width, 160)  # logs and pipes: do not squeeze tables to 80 columns
    return console


def _broken_pipe() -> None:
    raise BrokenPipeError(32, "the reader of the output went away")


def styled(tag: str, style: str, message: str):
    """``tag`` in ``style``, then ``message`` verbatim (no markup, no emoji codes)."""
    from rich.text import Text

    return Text.assemble((tag, style), " ", message)


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]
