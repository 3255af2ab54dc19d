"""Helpers for DDS tests: spin a test node until a condition holds, and feed a node process the
bundled bag on its own camera topics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools.processes import NodeProcess


def spin_until(node: Any, cond: Callable[[], object], timeout: float) -> bool:
    """Spin ``node`` until ``cond()`` is true or ``timeout`` seconds passed; the final value."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if cond():
            return True
    return bool(cond())


def play_bag(image_topic: str, info_topic: str, log_dir: Path, *extra: str, loops: int = 1) -> None:
    """Play the bundled bag (camera only: no depth, no /tf) on the given topics, to the end."""
    player = NodeProcess("vlm3_ros.ros.bag_player", [
        str(BAG_PATHS["mcap"]), "--no-tf", "--depth-topic", "", "--publish-image-as", image_topic,
        "--publish-camera-info-as", info_topic, "--loops", str(loops), *extra], log_dir=log_dir).start()
    player.wait_for_log(f"loop {loops}/{loops} done", timeout=60 * loops)
    player.stop()


@contextmanager
def served_node(ns: str, node_args: list[str], log_dir: Path, client_name: str, play: bool = True,
                player_args: tuple[str, ...] = (), active_timeout: float = 60.0) -> Iterator[tuple[Any, Any, Any]]:
    """A perception node process in namespace ``ns`` (camera on ``<ns>/image`` and
    ``<ns>/camera_info``), active, fed the bundled bag once (``play``); yields (process, a test
    node, a PerceptionClient of it) and stops both after."""
    import rclpy

    from vlm3_ros.ros.client import PerceptionClient

    args = ["--ros-args", "-r", f"__ns:={ns}", "-p", f"image_topic:={ns}/image",
            "-p", f"camera_info_topic:={ns}/camera_info", "-p", "qos_reliability:=reliable", *node_args]
    proc = NodeProcess("vlm3_ros.ros.perception_node", args, log_dir=log_dir).start()
    n = rclpy.create_node(client_name)
    try:
        proc.wait_for_log("]: active", timeout=active_timeout)
        if play:
            play_bag(f"{ns}/image", f"{ns}/camera_info", log_dir, *player_args)
        yield proc, n, PerceptionClient(n, f"{ns}/vlm3_perception")
    finally:
        n.destroy_node()
        proc.stop()
