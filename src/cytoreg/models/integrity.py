"""Is a weight or config file whole? Cheap answers that read headers, never tensors: a
safetensors header against the file's size, a torch zip archive's directory, a JSON file, the
pickled objects a weights-only load would refuse, and the fewest bytes a spec's parameter count
allows. :mod:`cytoreg.models.check` turns them into report lines."""
from __future__ import annotations

import json
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

#: pickled globals a weights-only load accepts outside ``torch.`` (torch's allowlist; argparse.Namespace:
#: timm's loader adds it for training checkpoints' ``args``)
ALLOWED_GLOBALS = frozenset({"_codecs.encode", "builtins.bytearray", "builtins.complex", "builtins.set",
                             "collections.Counter", "collections.OrderedDict", "argparse.Namespace"})
PY2_NAMES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def damaged(path: Path) -> str | None:
    """Why a weight or config file cannot be what it claims (None: it looks whole). Reads the
    safetensors header, a zip archive's directory or a JSON file; never the tensors."""
    try:
        size = path.stat().st_size
        if path.suffix == ".json":
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                return f"is not valid JSON ({exc})"
            return None
        with path.open("rb") as fh:
            head = fh.read(8)
        if path.suffix == ".safetensors":
            if size < 8:
                return f"has {size} bytes, less than a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"is cut short: its header says {n} header bytes, the file has {size}"
            with path.open("rb") as fh:
                fh.seek(8)
                header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            if 8 + n + end != size:
                return f"is cut short: its header promises {8 + n + end} bytes, the file has {size}"
            return None
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                zf.namelist()
            return None
        if head.startswith(b"PK"):
            return f"is a zip archive (torch's format) without its end: cut short at {size} bytes"
        if head[:1] == b"\x80" and size > 1024:  # torch's legacy (pre-1.6) pickle format: not checked further
            return None
        return f"({size} bytes) is neither a torch checkpoint (zip archive) nor safetensors"
    except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as exc:
        return f"cannot be read ({type(exc).__name__}: {exc})"


_UNITS = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}


def expected_floor(spec: Any) -> tuple[int, str] | None:
    """The fewest bytes the spec's weights can take: ``parameters`` at one byte each (half of
    bf16), else a quarter of ``memory`` (fp32 → bf16 → margin). None when the spec says neither."""
    m = re.match(r"\s*([\d.]+)\s*([KMBGT])", str(spec.get("parameters") or ""), re.IGNORECASE)
    if m:
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()]), f"parameters {spec.get('parameters')}"
    m = re.match(r"\s*([\d.]+)\s*(GB|MB)", str(spec.get("memory") or ""), re.IGNORECASE)
    if m:
        n = float(m.group(1)) * (1e9 if m.group(2).upper() == "GB" else 1e6)
        return int(n / 4), f"memory {spec.get('memory')}"
    return None


def unsafe_globals(path: Path) -> list[str]:
    """The pickled Python objects of a torch zip checkpoint that ``torch.load(weights_only=True)``
    refuses, read from the opcodes of its ``data.pkl`` (nothing is unpickled, torch is not
    imported). Conservative: anything under ``torch.`` except ``torch.nn.modules`` counts as
    allowed, so a checkpoint torch would load is never reported."""
    if path.suffix == ".safetensors" or not zipfile.is_zipfile(path):
        return []
    try:
        with zipfile.ZipFile(path) as zf:
            pkl = next((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                return []
            data = zf.read(pkl)
        found: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL" and isinstance(arg, str):
                module, _, attr = arg.partition(" ")
                name = f"{PY2_NAMES.get(module, module)}.{attr}"  # protocol 2 writes Python 2's names
                refused = name not in ALLOWED_GLOBALS and not (
                    name.startswith("torch.") and not name.startswith("torch.nn.modules."))
                if refused and name not in found:
                    found.append(name)
        return found
    except (OSError, ValueError, zipfile.BadZipFile):  # an unreadable pickle: the load names it
        return []
