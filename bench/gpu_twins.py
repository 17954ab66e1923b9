"""The tiny twins of the built-in local VLM specs on CUDA (issue 22's GPU check).

Each spec runs as shipped (bf16, device_map auto; idefics-80b / idefics-80b-hidden in 8-bit
through bitsandbytes, where it imports) on its twin from ``tests/tiny_vlm.py``:
``cytoreg eval --device cuda`` zero- and few-shot (or the probe for hidden-state specs), then
batched vs one-by-one last-position logits and greedy texts, and the image's effect on the logits.
One JSON line per spec.

    PYTHONPATH=src python bench/gpu_twins.py [--out DIR] [--device cpu] [--only SPEC,...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def generator(name: str, root: Path, device: str) -> dict:
    import torch

    from hf_twins import build_twin, last_logits, run_eval
    from cytoreg.models.hf_generate import HFGenerator
    from cytoreg.registry.builtins import TASK_KINDS
    from cytoreg.registry.catalog import Catalog

    spec_dir, model = build_twin(root, name, {"max_tokens": 6})
    cat = Catalog.load([spec_dir])
    ad = HFGenerator(cat.model(model), device=device)
    ad.load()
    row: dict = {"spec": name, "device": str(ad._device), "dtype": str(ad._model.dtype),
                 "family": type(ad._family).__name__, "batch_size": ad.batch_size,
                 "8bit": bool(getattr(ad._model, "is_loaded_in_8bit", False))}
    limit = 2 * ad.batch_size + 1
    t0 = time.perf_counter()
    rc, res, recs = run_eval(spec_dir, "twin-demo", model, root / "run", "--device", device, "--limit", str(limit))
    row.update(eval_rc=rc, eval_s=round(time.perf_counter() - t0, 2), records=len(recs),
               error_records=sum(1 for r in recs if r.get("error")),
               first_error=next((r["error"] for r in recs if r.get("error")), None))
    kind = TASK_KINDS.get("classification")(cat.task("twin-demo"))
    prep = kind.prepare()
    n = max(ad.batch_size, 2)
    shots = kind.fewshot_examples(prep)
    zero = [kind.chat_request(s, "zero_shot", [], {"max_tokens": 6}, 0) for s in prep.test[:n]]
    few = [kind.chat_request(s, "few_shot", shots, {"max_tokens": 6}, 0) for s in prep.test[:n]]
    from cytoreg.models.base import ChatRequest, Message, TextPart

    m0 = zero[0].messages[0]
    longer = ChatRequest([Message(m0.role, [TextPart(p.text + " Basophil Eosinophil Lymphocyte")
                                            if isinstance(p, TextPart) else p for p in m0.parts])], zero[0].generation)
    for setting, reqs in (("zero_shot", zero), ("few_shot", few), ("padded_lengths", [longer] + zero[1:]),
                          ("mixed_image_counts", [few[0]] + zero[1:])):
        batched = last_logits(ad, reqs)
        single = torch.cat([last_logits(ad, [r]) for r in reqs])
        texts_b = [r.text for r in ad.generate_batch(reqs)]
        texts_s = [ad.generate(r).text for r in reqs]
        row[f"{setting}_batched_vs_single_max_logit_diff"] = float((batched - single).abs().max())
        row[f"{setting}_logit_scale"] = float(single.abs().max())
        row[f"{setting}_greedy_texts_equal"] = texts_b == texts_s
        row[f"{setting}_image_effect_max_logit_diff"] = float((single[0] - single[1]).abs().max())
    return row


def hidden(name: str, root: Path, device: str) -> dict:
    from hf_twins import build_twin, run_eval

    spec_dir, model = build_twin(root, name)
    t0 = time.perf_counter()
    rc, res, _ = run_eval(spec_dir, "twin-probe", model, root / "run", "--device", device)
    evs = res.get("evaluations", [])
    return {"spec": name, "eval_rc": rc, "eval_s": round(time.perf_counter() - t0, 2),
            "settings": [e["setting"] for e in evs], "errors": [e.get("errors") for e in evs],
            "feature_dim": sorted({e.get("probe", {}).get("feature_dim") for e in evs})}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--device", default="cuda", help="cpu for a smoke test of this script")
    ap.add_argument("--only", help="comma-separated spec names")
    args = ap.parse_args()
    import torch
    import transformers

    from hf_twins import TWINS, local_vlm_specs

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__,
                      "cuda": torch.cuda.is_available(),
                      "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                      "bitsandbytes": has_bnb}), flush=True)
    rows = []
    for name, adapter in sorted(local_vlm_specs().items()):
        if args.only and name not in args.only.split(","):
            continue
        if TWINS[name].needs and not has_bnb:
            rows.append({"spec": name, "skipped": "bitsandbytes not installed"})
            print(json.dumps(rows[-1]), flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                rows.append((generator if adapter == "hf" else hidden)(name, Path(tmp), args.device))
            except Exception as exc:  # report and go on to the next spec
                rows.append({"spec": name, "failed": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()[-1500:]})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_twins.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
