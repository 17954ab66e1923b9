"""The fine-tuning record in ``DIR/finetune/state.json``: uploaded files by content hash and jobs
by (model, task, n, data hash, settings). Written atomically after every change, so a kill at
any point leaves the last complete record, and a rerun continues from it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cytoreg.errors import CytoregError

VERSION = "cytoreg/finetune/v1"


class State:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {"schema": VERSION, "files": {}, "jobs": {}, "adapters": {}}
        if path.exists():
            try:
                loaded = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise CytoregError(f"{path} is not valid JSON ({exc}); it is written atomically, so something "
                                   f"else changed it. Restore it, or move it away to start over (jobs already "
                                   f"created are then found again by their metadata)") from exc
            if loaded.get("schema") != VERSION:
                raise CytoregError(f"{path}: schema '{loaded.get('schema')}' is not {VERSION}")
            self.data.update(loaded)

    @property
    def files(self) -> dict[str, dict]:
        return self.data["files"]

    @property
    def jobs(self) -> dict[str, dict]:
        return self.data["jobs"]

    @property
    def adapters(self) -> dict[str, dict]:
        return self.data["adapters"]

    def save(self) -> None:
        from cytoreg.report.results import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=True))
