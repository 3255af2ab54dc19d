"""Placeholder for the evaluation command (issue 6)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="vlm3-ros eval", description="not implemented yet").parse_args(argv)
    return 1
