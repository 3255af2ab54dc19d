"""Inference backends behind one registry (``registry.BACKENDS``): the transformers model
(shared-prefix engine and naive reference), a remote OpenAI-compatible server, and the ground-truth
test double. A new backend is a module here plus one ``register`` call in registry.py."""
