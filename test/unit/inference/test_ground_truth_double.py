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
