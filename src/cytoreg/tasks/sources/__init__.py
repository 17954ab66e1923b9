"""Data sources: each turns a dataset on disk into a stream of :class:`Sample`."""
