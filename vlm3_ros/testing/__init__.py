"""Helpers for the test suite only (nothing shipped imports this package): the geometry chains on
the bundled frames, a scripted backend for fault injection, `transformers serve` offline, and the
import-layer checker."""
