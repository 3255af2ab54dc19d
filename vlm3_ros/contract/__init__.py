"""The model contract: the exact prompts the VLM3 checkpoints were trained on, strict parsers of
their answers, and the question/answer types every inference backend takes and returns."""
