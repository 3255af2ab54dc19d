"""Geometry: camera models, focal unification, prompt coordinates, back-projection, pose math,
trajectories and the odometry integrator. The bottom layer: numpy/scipy/OpenCV only, no imports
from the rest of vlm3_ros."""
