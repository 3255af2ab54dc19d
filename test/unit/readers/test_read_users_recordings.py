"""Bags as RealSense, ZED and OAK drivers record them (repacked from the bundled TUM frames):
the camera found without topic flags, compressed colour and compressedDepth decoded, the camera
pose through the TF tree (/tf_static chain below a moving odom -> base_link), trajectory files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.geometry.pose import invert
from vlm3_ros.readers.bag import BagError, BagReader
from vlm3_ros.readers.bag_contents import TopicRequest, describe, inspect_bag, pick_camera, resolve_topics
from vlm3_ros.readers.trajectory_file import TrajectoryFileError, read_kitti, read_trajectory, read_tum
from vlm3_ros.readers.tum import TumSequence
from vlm3_ros.testing.recordings import STYLES

RAW = ["realsense", "zed", "oak", "realsense_db3"]
ALL = [*RAW, "realsense_compressed", "zed_compressed", "oak_compressed"]


def _style(name: str):
    return STYLES[name.split("_")[0]]


@pytest.mark.parametrize("name", ALL)
def test_the_only_camera_is_found_with_its_info_and_depth(recordings, name: str) -> None:
    style, compressed = _style(name), name.endswith("compressed")
    summary = inspect_bag(recordings[name])
    cam = pick_camera(summary)
    assert cam.image.topic == style.color + ("/compressed" if compressed else "")
    assert cam.camera_info == style.info
    assert cam.depth == style.depth + ("/compressedDepth" if compressed else "")
    assert cam.image.frame_id == style.optical and cam.image.count == len(TumSequence().frames)
    kinds = {edge: kind for edge, kind in summary.tf_edges.items()}
    assert kinds[("odom", "base_link")] == "dynamic"
    assert all(kinds[(p, c)] == "static" for p, c, _ in style.links)
    t = resolve_topics(recordings[name], TopicRequest())
    assert (t.image, t.camera_info, t.depth) == (cam.image.topic, cam.camera_info, cam.depth)
    text = describe(summary)
    assert "picked without topic flags" in text and f"vlm3-ros eval {recordings[name]} --backend ground_truth" in text


@pytest.mark.parametrize("name", ["realsense", "zed", "oak"])
def test_compressed_copies_decode_to_the_raw_pixels(recordings, name: str) -> None:
    topics = {n: resolve_topics(recordings[n], TopicRequest()) for n in (name, f"{name}_compressed")}
    raw = BagReader(recordings[name], topics[name])
    comp = BagReader(recordings[f"{name}_compressed"], topics[f"{name}_compressed"])
    raw_img = {r.value.stamp_ns: r.value.rgb() for r in raw.records(("image",))}
    comp_img = {r.value.stamp_ns: r.value.rgb() for r in comp.records(("image",))}
    assert raw_img.keys() == comp_img.keys()
    for s, rgb in raw_img.items():
        assert comp_img[s].shape == rgb.shape
        # jpeg at the encoder's quality: close, not equal
        assert np.abs(comp_img[s].astype(int) - rgb.astype(int)).mean() < 4.0
    raw_d = {s: r.depth_m() for s, r in raw.depth_images().items()}
    comp_d = {s: r.depth_m() for s, r in comp.depth_images().items()}
    assert raw_d.keys() == comp_d.keys() == raw_img.keys()
    for s, d in raw_d.items():
        valid = np.isfinite(d) & (d > 0)
        assert valid.mean() > 0.5
        # compressedDepth is PNG: lossless for 16UC1 mm; 32FC1 goes through the inverse-depth
        # quantisation of image_transport's plugin
        tol = 1e-9 if _style(name).depth_encoding == "16UC1" else 0.01
        assert np.allclose(comp_d[s][valid], d[valid], rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["realsense", "zed_compressed", "oak", "realsense_db3"])
def test_the_camera_pose_comes_through_the_tf_tree(recordings, name: str) -> None:
    """/tf_static base_link -> camera_link -> ... -> optical below a moving odom -> base_link: the
    camera's motion relative to its first frame is TUM's ground truth, whatever the tree."""
    r = BagReader(recordings[name], resolve_topics(recordings[name], TopicRequest()))
    assert r.camera_frame() == _style(name).optical
    traj = r.trajectory()
    seq = TumSequence()
    stamps = [round(f.rgb_stamp * 1e9) for f in seq.frames]
    first = traj.interpolate(stamps[0] * 1e-9)
    for i, s in enumerate(stamps):
        rel = invert(first) @ traj.interpolate(s * 1e-9)
        want = invert(seq.pose_at(0)) @ seq.pose_at(i)
        assert np.allclose(rel, want, atol=1e-6), i


def test_a_camera_frame_outside_the_tree_is_explained(recordings) -> None:
    t = resolve_topics(recordings["realsense"], TopicRequest(camera_frame="camera_rgb_optical_frame"))
    with pytest.raises(BagError, match=r"camera frame 'camera_rgb_optical_frame' is not in its TF tree"):
        BagReader(recordings["realsense"], t).trajectory()


def test_several_cameras_must_be_named(recordings, tmp_path: Path) -> None:
    summary = inspect_bag(recordings["realsense"])
    twin = summary.cameras[0]
    summary.cameras.append(type(twin)(twin.image, "/other/camera_info", ""))
    with pytest.raises(BagError, match=r"2 cameras: .*name one with --image-topic"):
        pick_camera(summary)
    with pytest.raises(BagError, match="no camera image with a camera_info beside it on '/nope'"):
        resolve_topics(recordings["realsense"], TopicRequest(image="/nope"))


def test_trajectory_files_tum_and_kitti(tmp_path: Path) -> None:
    seq = TumSequence()
    stamps = [round(f.rgb_stamp * 1e9) for f in seq.frames]
    tum = tmp_path / "gt.txt"
    kitti = tmp_path / "poses.txt"
    lines_tum, lines_kitti = ["# timestamp tx ty tz qx qy qz qw"], []
    from vlm3_ros.geometry.pose import matrix_to_quat_xyzw

    for i, s in enumerate(stamps):
        P = seq.pose_at(i)
        q = matrix_to_quat_xyzw(P[:3, :3])
        lines_tum.append(f"{s * 1e-9:.9f} " + " ".join(f"{v:.9f}" for v in (*P[:3, 3], *q)))
        lines_kitti.append(" ".join(f"{v:.9f}" for v in P[:3, :4].ravel()))
    tum.write_text("\n".join(lines_tum) + "\n")
    kitti.write_text("\n".join(lines_kitti) + "\n")
    for traj in (read_tum(tum), read_kitti(kitti, stamps), read_trajectory(tum, "tum", stamps),
                 read_trajectory(kitti, "kitti", stamps)):
        for i, s in enumerate(stamps):
            assert np.allclose(traj.interpolate(s * 1e-9), seq.pose_at(i), atol=1e-6)
    bad = tmp_path / "bad.txt"
    bad.write_text("1.0 2 3 4 0 0 0 1\n1.1 2 3\n")
    with pytest.raises(TrajectoryFileError, match=r"bad\.txt:2: a TUM trajectory line"):
        read_tum(bad)
    with pytest.raises(TrajectoryFileError, match="2 poses for 3 images"):
        read_kitti(_short(kitti, 2), stamps[:3])


def _short(path: Path, n: int) -> Path:
    out = path.with_name("short.txt")
    out.write_text("\n".join(path.read_text().splitlines()[:n]) + "\n")
    return out
