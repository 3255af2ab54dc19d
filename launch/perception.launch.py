"""Start the vlm3_ros perception node.

    ros2 launch vlm3_ros perception.launch.py depth_model:=/models/VLM3-depth pose_model:=/models/VLM3-pose \
        corr_model:=/models/VLM3-corr object_model:=/models/VLM3-object image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info

Where `ros2 launch` is not installed, `vlm3-ros bringup` takes the same arguments (NAME:=VALUE).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from vlm3_ros.params.launch_args import EXECUTABLE, LAUNCH_ARGS, NODE_NAME, parameter_overrides

SIGTERM_TIMEOUT_S = "30"  # seconds from launch's SIGINT to its SIGTERM (then SIGKILL 5 s later)


def _node(context, *args, **kwargs):
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGS}
    params_file = values["params_file"] or FindPackageShare("vlm3_ros").perform(context) + "/config/perception.yaml"
    # On Ctrl-C the node lets the running inference job reach its next batch boundary and releases
    # the models before it exits 0; launch's default of 5 s before SIGTERM is shorter than one
    # batch of a large model on a slow device.
    return [Node(package="vlm3_ros", executable=EXECUTABLE, name=NODE_NAME, namespace=values["namespace"],
                 output="screen", emulate_tty=True, sigterm_timeout=SIGTERM_TIMEOUT_S,
                 parameters=[params_file, parameter_overrides(values)])]


def generate_launch_description():
    return LaunchDescription([
        *[DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in LAUNCH_ARGS],
        OpaqueFunction(function=_node),
    ])
