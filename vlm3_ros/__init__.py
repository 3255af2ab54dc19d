"""vlm3_ros: VLM3 spatial perception for ROS 2.

The pure core (geometry, prompts and parsing, inference engine, visual-odometry integration,
metrics, bag reading) lives in plain modules that never import rclpy; the ROS shell lives in
``vlm3_ros.ros``. Generated interfaces are ``vlm3_ros.msg`` and ``vlm3_ros.srv``.
"""

from pkgutil import extend_path

# The generated msg/ and srv/ live in the colcon install of this package; when the source tree
# comes first on sys.path (tests, a checkout), this lets `vlm3_ros.msg` still resolve there.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
