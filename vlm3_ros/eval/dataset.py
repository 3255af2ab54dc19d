"""What an evaluation asks, with the answers it expects: queries with ground truth, from recorded
bags (sampled) or from published label files (as given).

A bag gives frames (image + CameraInfo), ground-truth depth registered to the image and
ground-truth poses (a /tf chain or a pose topic). From them come depth queries (pixels with valid
3x3 ground truth, away from the border, seeded), frame pairs (strides, minimum baseline) for pose,
correspondences from depth + relative pose, occlusion-checked, and (object task) quantitative
region questions on sampled boxes measured on the depth. The sampling is the one copy
used by every consumer of these queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlm3_ros.contract.answers import format_object_quantity
from vlm3_ros.geometry import pose as P
from vlm3_ros.geometry import regions
from vlm3_ros.geometry.backproject import convert_depth
from vlm3_ros.geometry.camera import CameraModel
from vlm3_ros.geometry.frame import Frame
from vlm3_ros.geometry.trajectory import Trajectory, correspondences_from_depth
from vlm3_ros.readers.bag import BagReader, BagTopics
from vlm3_ros.readers.labels import CorrLabels, DepthLabels, ObjectLabel, PoseLabel


@dataclass(frozen=True)
class EvalOptions:
    tasks: tuple[str, ...] = ("depth", "pose", "corr")
    points_per_frame: int = 32      # depth pixels per request: sampled per bag frame, a label file's split so
    margin_px: int = 16
    seed: int = 0
    depth_type: str = "z_depth"
    strides: tuple[int, ...] = (1, 2, 4)
    min_baseline_m: float = 0.02
    corr_points: int = 8
    max_frames: int = 0
    depth_tolerance_s: float = 0.02
    object_questions: int = 4       # region questions per frame sampled from the depth (object task)


@dataclass
class SequenceData:
    name: str
    frames: list[Frame]
    depth: dict[int, np.ndarray]           # image stamp -> z-depth (m), registered to the image
    trajectory: Trajectory | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DepthQuery:
    frame: Frame
    pixels: np.ndarray          # (N, 2) original pixels
    gt: np.ndarray              # (N,) metres, in the evaluation's depth type


@dataclass(frozen=True)
class PoseQuery:
    frame_a: Frame
    frame_b: Frame
    T_a_b: np.ndarray           # true pose of camera B in camera A
    metric: bool = True         # the translation's length is known


@dataclass(frozen=True)
class CorrQuery:
    frame_a: Frame
    frame_b: Frame
    pixels_a: np.ndarray        # (N, 2) original pixels of A
    pixels_b: np.ndarray        # (N, 2) true original pixels of B


@dataclass(frozen=True)
class ObjectQuery:
    """A SpatialRGPT-Bench question: from a label file, or sampled on a bag's frame from its depth
    (:func:`object_queries`: boxes, not detected objects; quantitative kinds only)."""

    frame: Frame
    boxes: np.ndarray           # (N, 4) original pixels
    question: str               # ``Region [i]`` references
    answer: str                 # the benchmark's answer text
    qa_type: str                # quantitative | qualitative
    category: str
    id: str = ""
    truth_m: float | None = None     # sampled questions: the measured quantity, unrounded


@dataclass
class Dataset:
    """Everything one evaluated sequence (a bag, or a label file) asks."""

    name: str
    frames: int
    depth: list[DepthQuery] = field(default_factory=list)
    pose: list[PoseQuery] = field(default_factory=list)
    corr: list[CorrQuery] = field(default_factory=list)
    object: list[ObjectQuery] = field(default_factory=list)
    vo_frames: list[Frame] = field(default_factory=list)    # consecutive frames for the VO run
    trajectory: Trajectory | None = None
    notes: list[str] = field(default_factory=list)
    depth_images: dict[int, np.ndarray] = field(default_factory=dict)   # image stamp -> z-depth (the ceiling)

    def calls(self) -> int:
        """Runner calls this dataset needs (for the progress bar)."""
        return (len(self.depth) + len(self.pose) + len(self.corr) + len(self.object)
                + max(0, len(self.vo_frames) - 1))


def load_sequence(path: Path, topics: BagTopics, opts: EvalOptions,
                  trajectory: Callable[[list[int]], Trajectory] | None = None) -> SequenceData:
    """Frames, registered depth and (when a task needs them) ground-truth poses of one bag;
    ``trajectory(image stamps)`` (e.g. read from a file) replaces the bag's own poses."""
    reader = BagReader(path, topics)
    reader.require("image", "camera_info")
    info = {}
    images = []
    depth_raw = {}
    for rec in reader.records(("image", "camera_info", "depth")):
        if rec.kind == "camera_info":
            info[rec.value.stamp_ns] = rec.value.info
        elif rec.kind == "image":
            images.append(rec.value)
        elif rec.kind == "depth":
            depth_raw[rec.value.stamp_ns] = rec.value
    if not info:
        raise ValueError(f"{path}: no CameraInfo on {topics.camera_info}")
    frames = []
    stamps = np.array(sorted(info))
    for im in images:
        k = int(stamps[np.argmin(np.abs(stamps - im.stamp_ns))])
        frames.append(Frame(im.rgb(), CameraModel.from_camera_info(info[k]), im.stamp_ns, im.frame_id))
    if opts.max_frames:
        frames = frames[:opts.max_frames]
    notes = []
    depth = {}
    if depth_raw:
        dstamps = np.array(sorted(depth_raw))
        for f in frames:
            k = int(dstamps[np.argmin(np.abs(dstamps - f.stamp_ns))])
            if abs(k - f.stamp_ns) <= opts.depth_tolerance_s * 1e9:
                depth[f.stamp_ns] = depth_raw[k].depth_m()
    elif {"depth", "corr", "object"} & set(opts.tasks):
        notes.append(f"no depth topic {topics.depth!r}: depth, correspondence and region questions skipped")
    traj = None
    if "pose" in opts.tasks or "corr" in opts.tasks:  # depth alone needs no poses
        stamps = [f.stamp_ns for f in frames]
        try:
            traj = trajectory(stamps) if trajectory is not None else reader.trajectory(stamps)
        except ValueError as e:
            notes.append(str(e) + ": pose and correspondence skipped")
    return SequenceData(path.name, frames, depth, traj, notes)


def sample_pixels(depth: np.ndarray, n: int, margin: int, rng: np.random.Generator) -> np.ndarray:
    """Pixels whose whole 3x3 neighbourhood has ground-truth depth (a query rounded to the nearest
    prompt integer must not land in a hole), away from the border by ``margin``."""
    import cv2

    h, w = depth.shape
    inner = np.zeros_like(depth, dtype=bool)
    inner[margin:h - margin, margin:w - margin] = True
    valid = cv2.erode((depth > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    vv, uu = np.nonzero(inner & valid)
    if not len(uu):
        return np.zeros((0, 2))
    idx = rng.choice(len(uu), size=min(n, len(uu)), replace=False)
    return np.column_stack([uu[idx], vv[idx]]).astype(np.float64)


def frame_pairs(seq: SequenceData, opts: EvalOptions) -> list[tuple[int, int, np.ndarray]]:
    """(i, j, T_i_j) for each stride whose ground-truth baseline reaches min_baseline_m."""
    assert seq.trajectory is not None
    out = []
    poses = []
    for f in seq.frames:
        try:
            poses.append(seq.trajectory.interpolate(f.stamp_ns * 1e-9))
        except ValueError:
            poses.append(None)
    for s in opts.strides:
        for i in range(len(seq.frames) - s):
            a, b = poses[i], poses[i + s]
            if a is None or b is None:
                continue
            T = P.invert(a) @ b
            if np.linalg.norm(T[:3, 3]) >= opts.min_baseline_m:
                out.append((i, i + s, T))
    return out


def depth_ground_truth(frame: Frame, depth_z: np.ndarray, pixels: np.ndarray, depth_type: str) -> np.ndarray:
    """Ground truth at ``pixels`` (integer-truncated lookup), as z-depth or range along the ray."""
    z = depth_z[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
    if depth_type == "z_depth":
        return z
    return convert_depth(z, frame.camera.undistort_pixels(pixels), frame.camera.rectified().K, "z_depth", "range")


def correspondence_query(fa: Frame, fb: Frame, depth_a: np.ndarray, depth_b: np.ndarray | None, T_a_b: np.ndarray,
                         pixels: np.ndarray) -> CorrQuery | None:
    """Where ``pixels`` of A land in B by depth + relative pose; occluded and out-of-view ones are
    dropped (None when none is left)."""
    cam_a, cam_b = fa.camera, fb.camera
    z = depth_a[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
    d2r = cam_b.undistort_image(depth_b.astype(np.float32), interpolation=0) if depth_b is not None else None
    c = correspondences_from_depth(cam_a.undistort_pixels(pixels), z, cam_a.rectified().K, P.invert(T_a_b),
                                   cam_b.rectified().K, (cam_b.width, cam_b.height), d2r)
    keep = c.valid
    if not keep.any():
        return None
    return CorrQuery(fa, fb, pixels[keep], cam_b.distort_pixels(c.uv2[keep]))


# SpatialRGPT-Bench's wording for the quantitative kinds a depth image answers (the demo asks the
# first direct-distance one); ``Region [i]`` is replaced by the box text when the task renders it.
OBJECT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "distance_data": ("How far is Region [0] from Region [1]?",
                      "What is the distance between Region [0] and Region [1]?"),
    "horizontal_distance_data": ("How far apart are Region [0] and Region [1] horizontally?",
                                 "What is the horizontal distance between Region [0] and Region [1]?"),
    "vertical_distance_data": ("How far apart are Region [0] and Region [1] vertically?",
                               "What is the vertical distance between Region [0] and Region [1]?"),
    "width_data": ("How wide is Region [0]?", "What is the width of Region [0]?"),
    "height_data": ("How tall is Region [0]?", "What is the height of Region [0]?"),
}
BOX_SIDE = (0.08, 0.3)      # a sampled box's sides, as fractions of the image's
BOX_MIN_COVERAGE = 0.6      # of its pixels with depth: a box over a hole measures the hole's rim
BOX_MAX_IOU = 0.1           # two regions of one question barely overlap


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def sample_box(depth: np.ndarray, margin: int, rng: np.random.Generator, avoid: np.ndarray | None = None,
               tries: int = 30) -> np.ndarray | None:
    """A box (x1, y1, x2, y2, whole original pixels) inside the margin, mostly over valid depth
    and, given ``avoid``, barely overlapping it; None when ``tries`` draws found none."""
    h, w = depth.shape
    for _ in range(tries):
        bw, bh = rng.uniform(*BOX_SIDE) * w, rng.uniform(*BOX_SIDE) * h
        x1 = rng.uniform(margin, max(margin, w - margin - bw))
        y1 = rng.uniform(margin, max(margin, h - margin - bh))
        box = np.round([x1, y1, x1 + bw, y1 + bh])
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        if regions.depth_coverage(box, depth) < BOX_MIN_COVERAGE:
            continue
        if avoid is not None and _iou(box, avoid) > BOX_MAX_IOU:
            continue
        return box
    return None


def object_queries(frame: Frame, depth: np.ndarray, n: int, margin: int, rng: np.random.Generator) -> list[ObjectQuery]:
    """``n`` quantitative region questions on one frame (kinds in turn from a random start, the
    wording drawn), their truth measured on the depth by :mod:`vlm3_ros.geometry.regions`; a
    question whose boxes cannot be placed is left out."""
    out = []
    start = int(rng.integers(len(regions.KINDS)))
    for i in range(n):
        kind = regions.KINDS[(start + i) % len(regions.KINDS)]
        two = kind in regions.TWO_REGIONS
        first = sample_box(depth, margin, rng)
        second = sample_box(depth, margin, rng, avoid=first) if (first is not None and two) else None
        if first is None or (two and second is None):
            continue
        boxes = np.array([first, second] if two else [first])
        pts = [regions.region_points(b, depth, frame.camera) for b in boxes]
        if any(len(p) < regions.MIN_POINTS for p in pts):
            continue
        value = regions.measure(kind, pts)
        texts = OBJECT_QUESTIONS[kind]
        question = texts[int(rng.integers(len(texts)))]
        answer = format_object_quantity(kind, value, "Region [0]", "Region [1]")
        out.append(ObjectQuery(frame, boxes, question, answer, "quantitative", kind, f"{frame.stamp_ns}_{i}", value))
    return out


def from_sequence(seq: SequenceData, opts: EvalOptions) -> Dataset:
    """The queries of a bag: depth per frame, then per frame pair its pose and correspondences
    (one seeded generator, drawn in that order, so a run is reproducible), then the region
    questions per frame (a second seeded generator)."""
    rng = np.random.default_rng(opts.seed)
    ds = Dataset(seq.name, len(seq.frames), notes=list(seq.notes), trajectory=seq.trajectory, depth_images=seq.depth)
    if "depth" in opts.tasks and seq.depth:
        for f in seq.frames:
            d = seq.depth.get(f.stamp_ns)
            if d is None:
                continue
            px = sample_pixels(d, opts.points_per_frame, opts.margin_px, rng)
            if len(px):
                ds.depth.append(DepthQuery(f, px, depth_ground_truth(f, d, px, opts.depth_type)))
    if ("pose" in opts.tasks or "corr" in opts.tasks) and seq.trajectory is not None:
        for i, j, T_true in frame_pairs(seq, opts):
            fa, fb = seq.frames[i], seq.frames[j]
            if "pose" in opts.tasks:
                ds.pose.append(PoseQuery(fa, fb, T_true))
            if "corr" in opts.tasks and fa.stamp_ns in seq.depth:
                px = sample_pixels(seq.depth[fa.stamp_ns], opts.corr_points, opts.margin_px, rng)
                if len(px):
                    q = correspondence_query(fa, fb, seq.depth[fa.stamp_ns], seq.depth.get(fb.stamp_ns), T_true, px)
                    if q is not None:
                        ds.corr.append(q)
        if "pose" in opts.tasks:
            ds.vo_frames = list(seq.frames)
    if "object" in opts.tasks and seq.depth:
        # its own generator: asking for the object task leaves the other tasks' samples as they were
        orng = np.random.default_rng([opts.seed, 1])
        for f in seq.frames:
            d = seq.depth.get(f.stamp_ns)
            if d is not None:
                ds.object.extend(object_queries(f, d, opts.object_questions, opts.margin_px, orng))
    return ds


def from_labels(items: list[DepthLabels | PoseLabel | CorrLabels | ObjectLabel], name: str,
                points_per_request: int) -> Dataset:
    """The queries of a label file, as given (an image's depth points split into requests of
    ``points_per_request``: the evaluation asks label files and bags in requests of one size)."""
    ds = Dataset(name, len(items))
    n = points_per_request
    for it in items:
        if isinstance(it, DepthLabels):
            for start in range(0, len(it.pixels), n):
                ds.depth.append(DepthQuery(it.frame, it.pixels[start:start + n], it.depth[start:start + n]))
        elif isinstance(it, PoseLabel):
            ds.pose.append(PoseQuery(it.frame_a, it.frame_b, it.T_a_b, it.metric))
        elif isinstance(it, CorrLabels):
            ds.corr.append(CorrQuery(it.frame_a, it.frame_b, it.pixels_a, it.pixels_b))
        elif isinstance(it, ObjectLabel):
            ds.object.append(ObjectQuery(it.frame, it.boxes, it.question, it.answer, it.qa_type, it.category, it.id))
    return ds
