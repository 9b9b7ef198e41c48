"""OpenAI-compatible API plumbing shared by ``distill``, ``score`` and verify's judge.

``client`` sends one request and classifies its failure; ``limits`` paces requests (RPM, TPM, Retry-After,
backoff); ``options`` holds what every request needs; ``retry`` is the one retry loop; ``output`` and ``runner``
make a run resumable (locked append-only OUT, failures file, workers, progress bar); ``report`` counts what a run
did; ``judge`` holds the LLM judge's rubrics, reply parsing and verify's correctness judge.
"""
