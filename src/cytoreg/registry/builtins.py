"""The built-in registries. Targets are lazy ``module:attr`` strings so that listing names
never imports an adapter's heavy dependencies."""
from __future__ import annotations

from cytoreg.registry.core import Registry

ADAPTERS: Registry = Registry("model adapter")
TASK_KINDS: Registry = Registry("task kind")
SOURCES: Registry = Registry("data source")
METRICS: Registry = Registry("metric")

for _name, _target, _kind, _desc in [
    ("random", "cytoreg.models.baselines:RandomBaseline", "baseline",
     "uniform random guess over the label set (seeded per sample)"),
    ("prior", "cytoreg.models.baselines:PriorBaseline", "baseline",
     "guess drawn from the class distribution of the evaluated samples (seeded per sample)"),
    ("openai", "cytoreg.models.openai_api:OpenAIChat", "generator",
     "OpenAI chat-completions API or any OpenAI-compatible server (vLLM, llama.cpp, ollama)"),
    ("gemini", "cytoreg.models.gemini_api:GeminiChat", "generator",
     "Google Gemini through the google-genai SDK (key from GEMINI_API_KEY / GOOGLE_API_KEY)"),
    ("anthropic", "cytoreg.models.anthropic_api:AnthropicChat", "generator",
     "Anthropic Claude through the Messages API (key from ANTHROPIC_API_KEY)"),
    ("vlmeval", "cytoreg.models.vlmeval_bridge:VLMEvalBridge", "generator",
     "any model in VLMEvalKit's supported_VLM, run in a separate worker process"),
    ("timm", "cytoreg.models.timm_features:TimmFeatures", "features",
     "frozen timm vision encoders: DINOv2, DinoBloom, UNI, Virchow2, H-optimus, Prov-GigaPath (hub layout)"),
    ("hf_features", "cytoreg.models.hf_features:HFFeatures", "features",
     "frozen transformers image encoders (Phikon-v2, DINOv3, Hibou): the checkpoint's image processor, card pooling"),
    ("hf_hidden", "cytoreg.models.hf_hidden:HFHiddenStates", "features",
     "hidden states of a transformers VLM at chosen layers (mean / last / image-token pooling)"),
    ("open_clip", "cytoreg.models.open_clip_adapter:OpenCLIP", "embedder",
     "open_clip models (hf-hub:, local-dir:, built-in names with pretrained tags)"),
    ("conch", "cytoreg.models.open_clip_adapter:Conch", "embedder",
     "CONCH (MahmoodLab) through its published checkpoint format"),
    ("musk", "cytoreg.models.musk_adapter:Musk", "embedder",
     "MUSK (lilab-stanford) zero-shot through its own GitHub package: timm model, XLM-R tokenizer, README recipe"),
    ("hf", "cytoreg.models.hf_generate:HFGenerator", "generator",
     "local image-text-to-text models through transformers (LLaVA, Mllama, IDEFICS, Qwen2-VL, SmolVLM)"),
    ("hf_clip", "cytoreg.models.hf_clip:HFCLIP", "embedder",
     "CLIP-style dual encoders in the transformers format (PLIP, openai/clip-vit-*)"),
    ("hf_remote_clip", "cytoreg.models.hf_remote_clip:HFRemoteCLIP", "embedder",
     "dual encoders whose checkpoint ships its own encode_image / encode_text code (KEEP; trust_remote_code)"),
]:
    ADAPTERS.add(_name, _target, kind=_kind, description=_desc)

TASK_KINDS.add("classification", "cytoreg.tasks.kinds:ClassificationKind", kind="task kind",
               description="closed label set; zero-shot / few-shot prompting, CLIP zero-shot, baselines")
TASK_KINDS.add("attributes", "cytoreg.tasks.attributes:AttributesKind", kind="task kind",
               description="several closed label sets (attributes) per image, each asked and scored on the same images")
TASK_KINDS.add("probe", "cytoreg.tasks.probe:ProbeKind", kind="task kind",
               description="heads on frozen features: logistic / MLP probes, external test sets, label-efficiency curves")
TASK_KINDS.add("explain", "cytoreg.tasks.explain_kind:ExplainKind", kind="task kind",
               description="classify + feature-importance scores or free-text explanation; confidence vs correctness")
TASK_KINDS.add("mcq", "cytoreg.tasks.mcq:MCQKind", kind="task kind",
               description="case text + image + numbered options; fixed shots, top-1 / any-of-k, difficulty strata")

for _name, _target, _desc in [
    ("imagefolder", "cytoreg.tasks.sources.imagefolder:ImageFolderSource",
     "one folder per class (label from folder name or file-name prefix, mapped by label_map)"),
    ("manifest", "cytoreg.tasks.sources.manifest:ManifestSource",
     "CSV / JSON / JSONL manifest with path and label columns; other columns kept as metadata"),
    ("npz", "cytoreg.tasks.sources.npz:NpzSource",
     "MedMNIST-style .npz (train_images, train_labels, ...)"),
    ("hf_datasets", "cytoreg.tasks.sources.hf:HFDatasetSource",
     "Hugging Face datasets: local imagefolder, save_to_disk folder, or hub id"),
    ("vlmeval_tsv", "cytoreg.tasks.sources.tsv:VLMEvalTSVSource",
     "VLMEvalKit TSV (base64 image, question, options A..., answer)"),
    ("pannuke", "cytoreg.tasks.sources.pannuke:PanNukeSource",
     "PanNuke folds (images / masks / types .npy) as benign vs malignant by PLIP's nuclei rule"),
    ("nejm_json", "cytoreg.tasks.sources.nejm:NEJMSource",
     "NEJM Image Challenge cases in the public scraped JSON format + a folder of IC<YYYYMMDD> images"),
]:
    SOURCES.add(_name, _target, kind="data source", description=_desc)

_builtin_metrics_loaded = False


def load_builtin_metrics() -> None:
    """Import the metric modules; their decorators fill METRICS."""
    global _builtin_metrics_loaded
    if not _builtin_metrics_loaded:
        _builtin_metrics_loaded = True
        import cytoreg.metrics.classification  # noqa: F401
