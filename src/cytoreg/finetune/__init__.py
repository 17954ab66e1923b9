"""``cytoreg finetune``: fine-tune a generative model on a task's training split at several n
per class (the probes' seeded, nested subsets), then evaluate the fine-tuned models through the
engine beside the task's heads.

- :mod:`.data`: the per-n training subsets and the examples (the task's zero-shot request + the label)
- :mod:`.openai_limits`: the provider's documented limits, token and cost estimates
- :mod:`.openai_jobs`: Files API upload, one job per n, polling, resumable state
- :mod:`.lora`: LoRA SFT of ``hf`` models with TRL + peft, and loading the adapter for evaluation
- :mod:`.curves`: the combined learning curve (fine-tuned model vs heads, paired bootstrap per n)
- :mod:`.run`: the command's steps in order
"""
