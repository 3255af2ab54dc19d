"""Inference backends: the transformers model (shared-prefix engine and naive reference), a remote
OpenAI-compatible server, and the ground-truth test double. No rclpy here."""
