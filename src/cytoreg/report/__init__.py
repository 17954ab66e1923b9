"""Results files and reports."""
