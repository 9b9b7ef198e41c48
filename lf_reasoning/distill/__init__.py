"""Distillation: ask a reasoning model behind an OpenAI-compatible API for a thought and an answer per prompt.

``prompts`` reads the prompts, ``client`` talks to the server, ``limits`` paces the requests and ``run`` drives the
resumable loop that writes one record per (prompt, sample).
"""

from lf_reasoning.distill.run import DistillReport, distill, format_summary

__all__ = ["DistillReport", "distill", "format_summary"]
