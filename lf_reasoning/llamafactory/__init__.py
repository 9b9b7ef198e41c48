"""Everything lf-reasoning knows about LLaMA-Factory lives in this subpackage.

Modules here that need the ``llamafactory`` package import it lazily, so conversion never loads torch.
"""
