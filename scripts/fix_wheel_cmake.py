"""Rewrite the wheel builder's include paths in the ROS 2 wheels' exported CMake files.

The ROS 2 wheels were built under /opt/python/cpXY-cpXY (manylinux) and their
``*__rosidl_generator_pyExport.cmake`` files name that interpreter's include directory and its
numpy include directory (cp311 for Kilted here, cp312 for Jazzy). CMake refuses an imported
target whose include directory does not exist, so an interface package that depends on them does
not configure. Idempotent.

Usage: python scripts/fix_wheel_cmake.py VENV_PREFIX
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# the builder's interpreter include directory and its numpy include directory, any CPython
BUILDER_PY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
BUILDER_NUMPY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/_core/include")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) == 2 else 2
    share = Path(argv[1]) / "share"
    replacements: dict[re.Pattern[str], str] = {
        BUILDER_PY_INCLUDE: sysconfig.get_paths()["include"],
        BUILDER_NUMPY_INCLUDE: numpy.get_include(),
    }
    changed = 0
    for path in share.glob("*/cmake/*.cmake"):
        text = path.read_text()
        if "/opt/python/cp3" not in text:
            continue
        for old, new in replacements.items():
            text = old.sub(new.replace("\\", "/"), text)
        path.write_text(text)
        changed += 1
    print(f"fix_wheel_cmake: rewrote include paths in {changed} CMake file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
