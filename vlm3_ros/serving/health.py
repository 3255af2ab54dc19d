"""The node's diagnostics, one status per part: the camera (images arriving and usable), the models
(loaded, or why configure failed), the requests (replies, queue, answers that did not parse) and,
with visual odometry, the camera extrinsic (from TF or the parameter)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from vlm3_ros.geometry.pose import matrix_to_quat_xyzw
from vlm3_ros.serving.camera_intake import CameraIntake
from vlm3_ros.serving.model_host import ModelHost
from vlm3_ros.serving.stats import MIN_ANSWERS, PARSE_WARN_SHARE, RequestStats


class HealthLevel(IntEnum):
    """Mirrors diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class Health:
    """One diagnostic status: ``name`` is a part of the node (camera, models, requests, extrinsic)."""

    name: str
    level: HealthLevel
    message: str
    values: dict[str, Any]


def camera_health(camera: CameraIntake, active: bool) -> Health:
    """STALE while inactive; WARN (logged) when no image arrived, or none was usable, for
    camera_timeout_s. Its values are the frame cache's and the core's counters."""
    s = camera.settings
    now = time.monotonic()
    silent = now - camera.last_frame_wall
    unusable = now - camera.unusable_since if camera.unusable_since is not None else 0.0
    stats = camera.sync.stats
    values: dict[str, Any] = {**stats.as_dict(), **camera.counters}
    if not active:
        return Health("camera", HealthLevel.STALE, "inactive", values)
    if silent > s.camera_timeout_s:
        msg = (f"no image on {s.image_topic} for {silent:.1f}s; check the topic name, the driver and the QoS "
               "(qos_reliability)")
    elif unusable > s.camera_timeout_s:
        msg = (f"images arrive on {s.image_topic} but none was usable for {unusable:.1f}s "
               f"(paired with {s.camera_info_topic}: {stats.paired_exact + stats.paired_fallback}); last problem: "
               f"{stats.last_error or 'none'}")
    else:
        return Health("camera", HealthLevel.OK, "receiving", values)
    camera.log.warning(msg, throttle_s=10.0, key="camera")
    return Health("camera", HealthLevel.WARN, msg, values)


def models_health(models: ModelHost) -> Health:
    """ERROR with the reason when configure failed, STALE when not loaded, else the backends."""
    values: dict[str, Any] = {}
    for task, b in sorted(models.backends.items()):
        values[f"{task}_backend"] = b.name
        for k, v in (getattr(b, "stats", None) or {}).items():
            values[f"{task}_{k}"] = v
    if models.config_error:
        return Health("models", HealthLevel.ERROR, models.config_error.splitlines()[0], values)
    if models.pipeline is None:
        return Health("models", HealthLevel.STALE, "not loaded (node not configured or inactive)", values)
    names = sorted({b.name for b in models.backends.values()})
    return Health("models", HealthLevel.OK, f"ready: {', '.join(names)}", values)


def requests_health(stats: RequestStats, models: ModelHost) -> Health:
    """The replies and the queue; WARN when too many recent model answers did not parse."""
    values = stats.values()
    worker = models.worker
    if worker is not None:
        values.update({f"queue_{k}": v for k, v in worker.stats.items()})
        values["queue_waiting"] = worker.queued()
    share, n = stats.parse_failure_share()
    if share is not None and n >= MIN_ANSWERS and share > PARSE_WARN_SHARE:
        return Health("requests", HealthLevel.WARN,
                      f"{share:.0%} of the last {n} model answers did not parse: a checkpoint for another task, "
                      "an untrained model, or max_new_tokens too small (see raw_answers)", values)
    return Health("requests", HealthLevel.OK, f"{sum(v for k, v in values.items() if k.startswith('replies_'))} "
                  "replies", values)


def extrinsic_health(camera: CameraIntake) -> Health:
    """OK when the extrinsic comes from TF (or TF is not used), WARN when it falls back to the
    parameter; the last extrinsic from TF as values."""
    vo = camera.settings.vo
    ok = camera.extrinsic_note.startswith("from TF") or not vo.use_tf_static
    values: dict[str, Any] = {"tf_frames": len(camera.tf.frames())}
    if ok and camera.extrinsic_last is not None:
        T = camera.extrinsic_last
        values["xyz_m"] = " ".join(f"{v:.4f}" for v in T[:3, 3])
        values["quat_xyzw"] = " ".join(f"{v:.5f}" for v in matrix_to_quat_xyzw(T[:3, :3]))
    return Health("extrinsic", HealthLevel.OK if ok else HealthLevel.WARN, f"camera extrinsic {camera.extrinsic_note}",
                  values)
