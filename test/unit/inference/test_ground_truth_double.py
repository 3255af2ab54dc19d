"""The ground-truth TEST DOUBLE answers for a bag replayed in loops (each loop's stamps continue
the clock), so a node fed `vlm3-ros play --loops N` or the load test's stream gets real answers."""

from __future__ import annotations

import numpy as np

from vlm3_ros.inference.ground_truth.backend import BagGroundTruth
from vlm3_ros.readers.bag import BagReader, loop_period_ns
from vlm3_ros.readers.tum import BAG_PATHS


def test_later_loops_map_back_onto_the_recording(bag_truth) -> None:
    images, _, traj = bag_truth
    gt = BagGroundTruth(BAG_PATHS["mcap"])
    period = loop_period_ns(list(BagReader(BAG_PATHS["mcap"]).records()))
    assert period > images[-1].stamp_ns - images[0].stamp_ns
    for im in images:
        for k in (0, 1, 3):
            d = gt.depth_z(im.stamp_ns + k * period)
            assert d is not None and np.array_equal(d, gt.depth_z(im.stamp_ns))
            assert np.allclose(gt.pose(im.stamp_ns + k * period), traj.interpolate(im.stamp_ns * 1e-9))
    assert BagGroundTruth(BAG_PATHS["mcap"], loops=False).depth_z(images[0].stamp_ns + period) is None


def test_the_nodes_double_uses_the_players_loop_period(bag_truth) -> None:
    """The node builds the double from its parameters (from_config); its loop period must be the
    player's and the load test's (computed over the camera, CameraInfo, depth and TF records)."""
    from vlm3_ros.inference.ground_truth.backend import GroundTruthBackend, GroundTruthConfig
    from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics

    images, _, _ = bag_truth
    gt = GroundTruthBackend.from_config(GroundTruthConfig(bag=str(BAG_PATHS["mcap"]))).source
    topics = resolve_topics(BAG_PATHS["mcap"], TopicRequest())
    records = [r for r in BagReader(BAG_PATHS["mcap"], topics).records() if r.kind != "tf_static"]
    period = loop_period_ns(records)
    for im in images:
        for k in (1, 2):
            assert gt.depth_z(im.stamp_ns + k * period) is not None, (k, im.stamp_ns)


def _region_stats(depth: np.ndarray, camera, box: tuple[int, int, int, int]) -> np.ndarray:
    """Independent of the double: every valid pixel of the box, undistorted, back-projected."""
    x1, y1, x2, y2 = box
    vv, uu = np.mgrid[y1:y2, x1:x2]
    z = depth[vv, uu]
    ok = z > 0
    uv = camera.undistort_pixels(np.column_stack([uu[ok], vv[ok]]).astype(float))
    K = camera.rectified().K
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * z[ok]
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * z[ok]
    return np.column_stack([x, y, z[ok]])


def test_quantitative_object_questions_are_answered_from_depth(gt_core, bag_truth) -> None:
    """Width, height and distances of regions through the whole chain (box -> prompt text ->
    the double -> answer text -> parse), against the recorded depth read directly."""
    from vlm3_ros.serving.core import FrameRef

    images, _, _ = bag_truth
    boxes = [(40, 200, 200, 400), (380, 120, 600, 300)]
    latest_stamp = images[-1].stamp_ns
    from vlm3_ros.geometry.camera import CameraModel
    from vlm3_ros.readers.tum import TumSequence

    camera = CameraModel.from_camera_info(TumSequence().camera_info)
    depth = BagGroundTruth(BAG_PATHS["mcap"]).depth_z(latest_stamp)   # registered to the latest image
    a, b = (_region_stats(depth, camera, bx) for bx in boxes)
    expected = {"What is the width of Region [0]?": np.subtract(*np.percentile(a[:, 0], [95, 5])),
                "How tall is Region [1]?": np.subtract(*np.percentile(b[:, 1], [95, 5])),
                "How far is Region [0] from Region [1]?": np.linalg.norm(np.median(a, 0) - np.median(b, 0)),
                "What is the vertical distance between Region [0] and Region [1]?":
                    abs(np.median(a, 0)[1] - np.median(b, 0)[1])}
    for question, value in expected.items():
        r = gt_core.services.object_query(FrameRef(), np.array(boxes, dtype=float), question)
        assert r.result.answer is not None and r.result.answer.quantity_m is not None, (question, r.result.raw)
        # stride-2 sampling and the [0, 1000] box integers move the statistics a little
        assert r.result.answer.quantity_m == np.float64(round(r.result.answer.quantity_m, 2))
        assert abs(r.result.answer.quantity_m - value) <= 0.05 * value + 0.02, (question, r.result.raw, value)
