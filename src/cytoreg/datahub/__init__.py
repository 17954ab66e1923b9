"""Getting datasets onto disk: the ``download:`` block of task specs, resumable fetching with
checksums, safe archive extraction, and verification of a dataset against published counts."""
