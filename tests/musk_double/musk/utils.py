"""INTERFACE DOUBLE of ``musk.utils`` (see the package docstring): ``xlm_tokenizer`` and
``load_model_and_may_interpolate`` with the published signatures and behaviour as the MUSK README
describes it, written for cytoreg's tests."""
import os

from musk import CALLS


def xlm_tokenizer(tokens, tokenizer, max_len=100):
    """One text → (ids, padding mask) of length ``max_len``: the tokenizer's ids between its own
    ``<s>`` / ``</s>``, cut to ``max_len - 2``, wrapped again, padded with ``<pad>``; the mask is 0 on
    tokens and 1 on padding."""
    CALLS.append(("xlm_tokenizer", {"tokens": tokens, "tokenizer": type(tokenizer).__name__, "max_len": max_len}))
    body = tokenizer.encode(tokens)[1:-1][: max_len - 2]
    ids = [tokenizer.bos_token_id, *body, tokenizer.eos_token_id]
    pad = max_len - len(ids)
    return ids + [tokenizer.pad_token_id] * pad, [0] * len(ids) + [1] * pad


def load_model_and_may_interpolate(ckpt_path, model, model_key, model_prefix,
                                   local_dir: str = os.path.join(os.path.expanduser("~"), ".cache/")):
    """Load a flat safetensors state dict into ``model`` (no hub download, no interpolation: the
    double's model has one image size). Like the package, it only prints what did not match."""
    from safetensors.torch import load_file

    CALLS.append(("load_model_and_may_interpolate", {"ckpt_path": ckpt_path, "model_key": model_key,
                                                     "model_prefix": model_prefix}))
    state = load_file(ckpt_path)
    for key in model_key.split("|"):
        if key in state:
            state = state[key]
            break
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        print(f"missing {missing}, unexpected {unexpected}")
