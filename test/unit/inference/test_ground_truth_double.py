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
    from vlm3_ros.readers.inspect import TopicRequest, resolve_topics

    images, _, _ = bag_truth
    gt = GroundTruthBackend.from_config(GroundTruthConfig(bag=str(BAG_PATHS["mcap"]))).source
    topics = resolve_topics(BAG_PATHS["mcap"], TopicRequest())
    records = [r for r in BagReader(BAG_PATHS["mcap"], topics).records() if r.kind != "tf_static"]
    period = loop_period_ns(records)
    for im in images:
        for k in (1, 2):
            assert gt.depth_z(im.stamp_ns + k * period) is not None, (k, im.stamp_ns)
