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


def cache_dir() -> Path:
    """Where setup put the offline assets of this environment: $VLM3_CACHE (scripts/env.sh sets it
    per distro; the Python 3.10 core keeps its own), else the checkout's .cache/vlm3_ros."""
    env = os.environ.get("VLM3_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache" / "vlm3_ros"


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


FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")   # Fast DDS 2.x; Kilted on is Fast DDS 3


def fastdds_2(env: MutableMapping[str, str]) -> bool:
    """Whether the ROS 2 in use ships Fast DDS 2.x (by the sourced ROS_DISTRO or the wheel distro)."""
    distro = env.get("ROS_DISTRO") or env.get("VLM3_DISTRO") or ""
    return distro in FASTDDS_2_DISTROS


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
    if fastdds_2(target):
        # Fast DDS 2.x reads only the old variable name; Fast DDS 3 warns when it is set.
        target["FASTRTPS_DEFAULT_PROFILES_FILE"] = target["FASTDDS_DEFAULT_PROFILES_FILE"]
    target.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    target["HF_HUB_OFFLINE"] = "1"
    target["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
    target["PYTHONUNBUFFERED"] = "1"
    return domain_id


# rclpy's major version per ROS 2 distro (its wheels are named ros-rclpy; apt's have no metadata)
RCLPY_MAJOR_DISTRO = {3: "humble", 5: "iron", 7: "jazzy", 9: "kilted"}


def rclpy_distribution() -> tuple[str, str] | None:
    """(distro, rclpy version) of the rclpy this interpreter would import, without importing it;
    None when there is none. Wheels are told apart by version; a sourced install by ROS_DISTRO."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("rclpy") is None:
        return None
    try:
        version = importlib.metadata.version("ros-rclpy")
    except importlib.metadata.PackageNotFoundError:
        return os.environ.get("ROS_DISTRO", "unknown"), "apt"
    distro = RCLPY_MAJOR_DISTRO.get(int(version.split(".")[0]), "unknown")
    return distro, version


def describe() -> str:
    """One line naming what a run uses: ROS 2 distro and rclpy, Python, torch, transformers."""
    import importlib.metadata
    import platform

    ros = rclpy_distribution()
    parts = [f"ROS 2 {ros[0]} (rclpy {ros[1]})" if ros else "no ROS 2 (pure core)",
             f"Python {platform.python_version()}"]
    for dist in ("torch", "transformers", "numpy"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"no {dist}")
    return ", ".join(parts)
