"""The canonical record and everything that reads or renders it.

``sources`` opens files, folders and hub datasets and streams raw records; ``formats`` turns each raw record
into :class:`~lf_reasoning.record.sample.ReasoningSample` s; ``thoughts`` parses and renders thought markup;
``filters`` decides what is kept; ``render`` writes the records LLaMA-Factory reads.
"""
