"""Helpers shared by the test suite, the benchmarks and the demo (no pytest import here)."""
