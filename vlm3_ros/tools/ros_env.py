"""The environment every vlm3_ros process gets in tests, benchmarks and the demo.

Keeps DDS on loopback (Fast DDS profile + ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), gives a run
its own ROS_DOMAIN_ID so parallel runs do not see each other, and switches the model hub off.
No rclpy import: call :func:`apply` before rclpy is imported or a node process is started.
"""

from __future__ import annotations

import os
import random
from collections.abc import MutableMapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = PACKAGE_DIR.parent
FASTDDS_PROFILE_NAME = "fastdds_loopback.xml"


def fastdds_profile() -> Path:
    """The loopback profile: from the source tree, else from the installed share directory."""
    candidates = [REPO_ROOT / "config" / FASTDDS_PROFILE_NAME]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "vlm3_ros" / "config" / FASTDDS_PROFILE_NAME)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{FASTDDS_PROFILE_NAME} not found in {[str(c) for c in candidates]}; "
        "source scripts/env.sh or the colcon install first"
    )


def pick_domain_id() -> int:
    """A domain id in 1..100 (0 is the default a robot uses; >101 clashes with ports on Linux)."""
    return random.SystemRandom().randint(1, 100)


def apply(env: MutableMapping[str, str] | None = None, domain_id: int | None = None) -> int:
    """Set the loopback/offline variables in ``env`` (default: os.environ); return the domain id."""
    target = os.environ if env is None else env
    if domain_id is None:
        existing = target.get("VLM3_TEST_DOMAIN_ID")
        domain_id = int(existing) if existing else pick_domain_id()
    target["VLM3_TEST_DOMAIN_ID"] = str(domain_id)
    target["ROS_DOMAIN_ID"] = str(domain_id)
    target["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    target["FASTDDS_DEFAULT_PROFILES_FILE"] = str(fastdds_profile())
    target.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    target["HF_HUB_OFFLINE"] = "1"
    target["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
    target["PYTHONUNBUFFERED"] = "1"
    return domain_id
