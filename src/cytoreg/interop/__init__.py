"""Bridges to other harnesses: export a cytoreg task (its sampled split, byte-exact prompts) in the
native form of VLMEvalKit, lmms-eval or inspect_ai, and import their per-sample outputs back as an
ordinary cytoreg run, re-scored with cytoreg's extraction and statistics. cytoreg's sample ids are
the thread: every exported row carries one, every import is matched on them."""
