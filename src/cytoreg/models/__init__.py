"""Model adapters (by capability) and built-in model specs."""
