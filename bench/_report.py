"""Shared by the bench scripts: each prints its figures against their bounds, then one line
``BENCH {json}`` that bench/all.py collects into a single table."""
from __future__ import annotations

import json
import statistics


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(name: str, value: float, bound: float, unit: str = "s", higher_is_better: bool = False,
        note: str = "") -> dict:
    """One figure: ``ratio`` = value / bound (for times, <= 1 meets the bound; for shares and
    speed-ups, >= 1 does)."""
    ratio = value / bound if bound else (0.0 if value == 0 else float("inf"))
    ok = ratio >= 1 if higher_is_better else ratio <= 1
    return {"name": name, "value": value, "bound": bound, "unit": unit, "ratio": ratio,
            "higher_is_better": higher_is_better, "ok": ok, "note": note}


def emit(rows: list[dict]) -> None:
    for r in rows:
        op = ">=" if r["higher_is_better"] else "<="
        print(f"  {r['name']}: {r['value']:.3f} {r['unit']} (bound {op} {r['bound']:g} {r['unit']}, "
              f"ratio {r['ratio']:.2f}) {'OK' if r['ok'] else 'NOT MET'}{'  ' + r['note'] if r['note'] else ''}")
    print("BENCH " + json.dumps(rows))
