"""Small VLMEvalKit models registered in its ``supported_VLM`` table (imported in the bridge's
worker process through the spec's ``params.imports``)."""
import hashlib
import os
import ssl
from functools import partial
from pathlib import Path

from vlmeval.config import supported_VLM
from vlmeval.vlm.base import BaseModel

from test_engine import LABEL_BY_SHA


class OracleVLM(BaseModel):
    """Answers with the true label of the last image and says what it was given."""

    INTERLEAVE = True

    def generate_inner(self, message, dataset=None):
        images = [m["value"] for m in message if m["type"] == "image"]
        texts = [m["value"] for m in message if m["type"] == "text"]
        sha = hashlib.sha256(Path(images[-1]).read_bytes()).hexdigest()
        kinds = "".join("I" if m["type"] == "image" else "T" for m in message)
        checks = "off" if ssl._create_default_https_context is ssl._create_unverified_context else "on"
        return (f"{LABEL_BY_SHA[sha]}\n--\npid={os.getpid()} order={kinds} dataset={dataset} ssl={checks} "
                f"first_text={texts[0][:20]!r}")


class FailingVLM(BaseModel):
    """An API model whose every call failed, the VLMEvalKit way: a failure string as the answer."""

    def generate_inner(self, message, dataset=None):
        return "Failed to obtain answer via API. "


supported_VLM["cytoreg-oracle"] = partial(OracleVLM)
supported_VLM["cytoreg-failing"] = partial(FailingVLM)
