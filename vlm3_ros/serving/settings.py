"""The serving core's settings, as typed records (built from the node's parameters by
vlm3_ros.params.mapping, the one place parameters become objects)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vlm3_ros.geometry.odometry import KeyframePolicy


@dataclass(frozen=True)
class SparseDepthSettings:
    rate_hz: float = 1.0                # 0 = off
    pattern: str = "grid"               # grid | pixels
    grid_cols: int = 8
    grid_rows: int = 6
    pixels: tuple[float, ...] = ()      # pattern=pixels: flat x0, y0, x1, y1, ...
    depth_type: str = "z_depth"

    def pixels_for(self, width: int, height: int) -> np.ndarray:
        """The queried pixels of a width x height image, inside the image."""
        if self.pattern == "pixels":
            px = np.array(self.pixels, dtype=np.float64).reshape(-1, 2)
        else:
            xs = (np.arange(self.grid_cols) + 0.5) * width / self.grid_cols
            ys = (np.arange(self.grid_rows) + 0.5) * height / self.grid_rows
            px = np.array([[x, y] for y in ys for x in xs])
        return px[(px[:, 0] <= width - 1) & (px[:, 1] <= height - 1)]


@dataclass(frozen=True)
class OdometrySettings:
    enabled: bool = True
    rate_hz: float = 1.0
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    extrinsic: tuple[float, ...] = (0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5)   # base -> optical, x y z qx qy qz qw
    use_tf_static: bool = True
    policy: KeyframePolicy = field(default_factory=KeyframePolicy)
    position_stddev_m: float = 0.05
    rotation_stddev_deg: float = 2.0
    publish_tf: bool = True


@dataclass(frozen=True)
class ServingSettings:
    tasks: tuple[str, ...] = ("depth", "pose", "corr", "object")
    backend: str = "transformers"
    image_topic: str = "/camera/image_raw"          # named in messages that say what to check
    camera_info_topic: str = "/camera/camera_info"
    camera_frame: str = ""                          # '' = the image header's frame_id
    stamp_tolerance_s: float = 0.02
    time_jump_s: float = 1.0                        # a stamp this far back restarts the timeline
    frame_cache_size: int = 30
    max_image_pixels: int = 4096 * 4096
    camera_timeout_s: float = 5.0
    max_regions: int = 16
    max_question_chars: int = 2000
    queue_size: int = 8
    merge_requests: bool = True                     # serving.merging
    request_timeout_s: float = 60.0
    sparse: SparseDepthSettings = field(default_factory=SparseDepthSettings)
    vo: OdometrySettings = field(default_factory=OdometrySettings)
