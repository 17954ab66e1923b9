"""Task kinds, data sources and built-in task specs."""
