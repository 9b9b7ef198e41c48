"""lf-reasoning: reasoning data and configs for LLaMA-Factory."""

__version__ = "0.1.0"
