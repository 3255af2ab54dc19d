"""Print pip constraints that pin every Python distribution the system (apt) installed, so a
``--system-site-packages`` venv never upgrades them: apt's ROS 2 Python packages (rclpy's
helpers, cv_bridge, sensor_msgs_py) were built against apt's numpy and OpenCV.

    python scripts/system_constraints.py > constraints.txt
    pip install -c constraints.txt -r requirements/system-ros.txt
"""

from __future__ import annotations

import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def system_distributions() -> dict[str, str]:
    """name -> version of the distributions outside this venv (the base interpreter's and apt's)."""
    venv_site = Path(sysconfig.get_paths()["purelib"]).resolve()
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        loc = Path(str(dist.locate_file(""))).resolve()
        if venv_site in (loc, *loc.parents):
            continue
        name = dist.metadata["Name"]
        if name:
            out.setdefault(name.lower().replace("_", "-"), dist.version)
    return out


def main() -> int:
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        return 0
    for name, version in sorted(system_distributions().items()):
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
