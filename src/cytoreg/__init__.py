"""cytoreg: evaluate vision-language models on cytology and medical-image benchmarks."""

__version__ = "0.1.0"
