"""One module per command: each is a plain Python function a notebook can call; ``lf_reasoning.cli`` wraps them."""
