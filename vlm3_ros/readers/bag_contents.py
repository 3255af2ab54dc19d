"""What a recording holds, found without being told: camera candidates (Image / CompressedImage
with their CameraInfo sibling and a depth partner), the TF frames and chains, ground-truth pose
sources, rates and the time span. ``vlm3-ros inspect`` prints it with the command lines that
would use it; ``eval`` and ``play`` pick the only camera when there is one.

Topic conventions followed (the drivers' own): a camera's CameraInfo sits beside its image topic
(``.../image_raw`` -> ``.../camera_info``, ``.../image_raw/compressed`` -> ``.../camera_info``);
a depth partner is a 16UC1 / 32FC1 image or a ``compressedDepth`` stream of the same size,
preferring one registered to the colour camera (``aligned_depth_to_color``, ``depth_registered``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vlm3_ros.readers.bag import (
    COMPRESSED_TYPES,
    IMAGE_TYPES,
    INFO_TYPES,
    ODOM_TYPES,
    POSE_TYPES,
    TF_TYPES,
    TRANSFORM_TYPES,
    BagError,
    BagReader,
    BagTopics,
    camera_info_from_msg,
)
from vlm3_ros.readers.image_codec import COLOR_ENCODINGS, DEPTH_ENCODINGS


@dataclass
class StreamInfo:
    topic: str
    msgtype: str
    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    encoding: str = ""          # Image encoding or CompressedImage format
    size: tuple[int, int] = (0, 0)
    frame_id: str = ""

    @property
    def rate_hz(self) -> float:
        return (self.count - 1) / ((self.last_ns - self.first_ns) * 1e-9) if self.count > 1 and self.last_ns > \
            self.first_ns else 0.0

    @property
    def is_depth(self) -> bool:
        return self.encoding in DEPTH_ENCODINGS or "compresseddepth" in self.encoding.lower()

    @property
    def is_color(self) -> bool:
        return self.encoding in COLOR_ENCODINGS or (self.msgtype in COMPRESSED_TYPES and not self.is_depth)


@dataclass
class Camera:
    image: StreamInfo
    camera_info: str
    depth: str = ""


@dataclass
class BagSummary:
    path: Path
    streams: dict[str, StreamInfo]
    cameras: list[Camera]
    tf_edges: dict[tuple[str, str], str]     # (parent, child) -> "static" | "dynamic"
    pose_topics: list[str] = field(default_factory=list)
    span_s: float = 0.0


def _info_sibling(topic: str, infos: set[str]) -> str:
    base = topic.removesuffix("/compressed").removesuffix("/compressedDepth")
    parent = base.rsplit("/", 1)[0]
    for cand in (f"{parent}/camera_info", f"{base}/camera_info"):
        if cand in infos:
            return cand
    return ""


def inspect_bag(path: Path | str) -> BagSummary:
    """Read the whole bag once and describe it."""
    reader = BagReader(Path(path), BagTopics(image="", camera_info="", depth="", tf="", tf_static=""))
    streams: dict[str, StreamInfo] = {}
    edges: dict[tuple[str, str], str] = {}
    pose_topics: list[str] = []
    stamps: list[int] = []
    with reader._reader() as r:
        for c, log_time, raw in r.messages():
            s = streams.setdefault(c.topic, StreamInfo(c.topic, c.msgtype, first_ns=log_time))
            s.count += 1
            s.last_ns = log_time
            stamps.append(log_time)
            if s.count > 1 and c.msgtype not in TF_TYPES:
                continue  # one message tells the encoding, size and frame
            m = r.deserialize(raw, c.msgtype)
            if c.msgtype in IMAGE_TYPES:
                s.encoding, s.size, s.frame_id = str(m.encoding), (int(m.width), int(m.height)), m.header.frame_id
            elif c.msgtype in COMPRESSED_TYPES:
                s.encoding, s.frame_id = str(m.format), m.header.frame_id
            elif c.msgtype in INFO_TYPES:
                ci = camera_info_from_msg(m)
                s.size, s.frame_id = (ci.width, ci.height), ci.frame_id
            elif c.msgtype in TF_TYPES:
                kind = "static" if c.topic.endswith("tf_static") else "dynamic"
                for t in m.transforms:
                    edges.setdefault((str(t.header.frame_id), str(t.child_frame_id)), kind)
            elif c.msgtype in POSE_TYPES | ODOM_TYPES | TRANSFORM_TYPES and c.topic not in pose_topics:
                pose_topics.append(c.topic)
    infos = {t for t, s in streams.items() if s.msgtype in INFO_TYPES}
    sizes = {t: streams[t].size for t in infos}
    colour = [s for s in streams.values() if s.msgtype in IMAGE_TYPES | COMPRESSED_TYPES and s.is_color]
    depth = [s for s in streams.values() if s.msgtype in IMAGE_TYPES | COMPRESSED_TYPES and s.is_depth]
    cameras = []
    for s in sorted(colour, key=lambda x: x.topic):
        info = _info_sibling(s.topic, infos)
        if not info:
            continue
        size = s.size if s.size != (0, 0) else sizes[info]
        partners = [d for d in depth if (d.size == size or d.size == (0, 0))]
        partners.sort(key=lambda d: (not any(w in d.topic for w in ("aligned", "registered")), d.msgtype
                                     not in IMAGE_TYPES, d.topic))
        cameras.append(Camera(s, info, partners[0].topic if partners else ""))
    span = (max(stamps) - min(stamps)) * 1e-9 if stamps else 0.0
    return BagSummary(Path(path), streams, cameras, edges, pose_topics, span)


def pick_camera(summary: BagSummary, want_compressed: bool | None = None) -> Camera:
    """The bag's one camera (raw and compressed copies of one stream count as one: raw preferred);
    BagError naming the candidates when there are none or several."""
    by_info: dict[str, list[Camera]] = defaultdict(list)
    for cam in summary.cameras:
        by_info[cam.camera_info].append(cam)
    if len(by_info) != 1:
        names = [c.image.topic for c in summary.cameras]
        what = "no camera (an Image or CompressedImage beside a camera_info)" if not names else \
            f"{len(by_info)} cameras: {', '.join(names)}"
        raise BagError(f"{summary.path.name} has {what}; name one with --image-topic and --camera-info-topic "
                       f"(see `vlm3-ros inspect {summary.path}`)")
    group = next(iter(by_info.values()))
    group.sort(key=lambda c: (c.image.msgtype in COMPRESSED_TYPES) != bool(want_compressed))
    return group[0]


def topics_for(summary: BagSummary, camera: Camera) -> BagTopics:
    return BagTopics(image=camera.image.topic, camera_info=camera.camera_info, depth=camera.depth,
                     pose=summary.pose_topics[0] if summary.pose_topics and not any(
                         k == "dynamic" for k in summary.tf_edges.values()) else "")


def describe(summary: BagSummary) -> str:
    """The inspection as text, with the command lines that would use it."""
    lines = [f"{summary.path}: {summary.span_s:.1f} s, {sum(s.count for s in summary.streams.values())} messages",
             "", "cameras:"]
    if not summary.cameras:
        lines.append("  none (no Image/CompressedImage with a camera_info beside it)")
    for c in summary.cameras:
        s = c.image
        w, h = s.size if s.size != (0, 0) else summary.streams[c.camera_info].size
        lines.append(f"  {s.topic}  [{s.encoding}, {w}x{h}, {s.rate_hz:.1f} Hz, {s.count} msgs, "
                     f"frame {s.frame_id!r}]")
        lines.append(f"    camera_info {c.camera_info}; depth {c.depth or '(none: depth metrics need one)'}")
    lines += ["", "TF edges:"]
    for (p, ch), kind in sorted(summary.tf_edges.items()):
        lines.append(f"  {p} -> {ch}  ({kind})")
    if not summary.tf_edges:
        lines.append("  none")
    lines += ["", "pose topics: " + (", ".join(summary.pose_topics) or "none")]
    if summary.cameras:
        try:
            cam, named = pick_camera(summary), False
        except BagError:
            cam, named = summary.cameras[0], True   # several cameras: the commands must name one
        t = topics_for(summary, cam)
        opts = (f" --image-topic {t.image} --camera-info-topic {t.camera_info}" + (f" --depth-topic {t.depth}"
                if t.depth else "")) if named else ""
        lines += ["", "use it" + ("" if named else " (the camera above is picked without topic flags)") + ":",
                  f"  vlm3-ros eval {summary.path}{opts} --backend ground_truth   # the ceiling: ideal answers",
                  f"  vlm3-ros eval {summary.path}{opts} --params-file my_robot.yaml",
                  f"  vlm3-ros play {summary.path}{opts if not named else f' --image-topic {t.image}'}"]
    return "\n".join(lines)


@dataclass(frozen=True)
class TopicRequest:
    """What the user named (None / '' = find it): the rest comes from the bag's own layout."""

    image: str | None = None
    camera_info: str | None = None
    depth: str | None = None
    pose: str = ""
    world_frame: str = ""
    camera_frame: str = ""
    compressed: bool | None = None      # with raw and compressed copies of one camera: which


def resolve_topics(bag: Path | str, req: TopicRequest) -> BagTopics:
    """The topics of ``bag`` to read: the ones named, the rest found (the only camera, its
    CameraInfo sibling, its depth partner, a pose topic when TF has no motion)."""
    frames = {"world_frame": req.world_frame, "camera_frame": req.camera_frame}
    if req.image and req.camera_info and req.depth is not None:
        return BagTopics(image=req.image, camera_info=req.camera_info, depth=req.depth, pose=req.pose, **frames)
    summary = inspect_bag(bag)
    if req.image:
        named = [c for c in summary.cameras if c.image.topic == req.image]
        if not named:
            raise BagError(f"{Path(bag).name} has no camera image with a camera_info beside it on {req.image!r} "
                           f"(cameras: {[c.image.topic for c in summary.cameras] or 'none'}); give "
                           "--camera-info-topic too, or run `vlm3-ros inspect`")
        cam = named[0]
    else:
        cam = pick_camera(summary, req.compressed)
    found = topics_for(summary, cam)
    return BagTopics(image=cam.image.topic, camera_info=req.camera_info or cam.camera_info,
                     depth=cam.depth if req.depth is None else req.depth, pose=req.pose or found.pose, **frames)
