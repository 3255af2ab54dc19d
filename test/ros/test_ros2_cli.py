"""What a ROS 2 user types, run as typed: ``ros2 launch vlm3_ros perception.launch.py`` with a params
file and launch arguments, then ``ros2 lifecycle``, ``ros2 param``, ``ros2 service call`` and
``ros2 topic echo`` against the launched node while ``vlm3-ros play`` feeds it the bundled bag on
remapped camera topics, and finally Ctrl-C through ``ros2 launch``.

The command lines are the ones in docs/ros.md and the README (checked here), run in a folder
holding ``my_robot.yaml``. One launched node (the ground-truth TEST DOUBLE backend: the fastest
one that exercises the same node, services and producers) serves every check. The module runs on
a DDS domain of its own: the session's other node, also named ``vlm3_perception``, is not seen.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from vlm3_ros.readers.tum import BAG_PATHS
from vlm3_ros.tools import ros_env
from vlm3_ros.tools.processes import CommandProcess, Ros2Cli

pytestmark = [pytest.mark.ros, pytest.mark.slow]

DOCS = (ros_env.REPO_ROOT / "docs" / "ros.md", ros_env.REPO_ROOT / "README.md")

LAUNCH = ("ros2 launch vlm3_ros perception.launch.py params_file:=my_robot.yaml "
          "image_topic:=/front/color/image_raw camera_info_topic:=/front/color/camera_info sparse_depth_rate:=5.0")
LIFECYCLE_GET = "ros2 lifecycle get /vlm3_perception"
PARAM_GET_ARG = "ros2 param get /vlm3_perception sparse_depth.rate_hz"
PARAM_GET_FILE = "ros2 param get /vlm3_perception qos_depth"
PARAM_SET_LIVE = "ros2 param set /vlm3_perception request_timeout_s 30.0"
PARAM_SET_BAD = "ros2 param set /vlm3_perception max_points_per_request 0"
PARAM_SET_CONFIGURE = "ros2 param set /vlm3_perception image_topic /rear/color/image_raw"
CALLS = {
    "depth": 'ros2 service call /vlm3_perception/get_depth vlm3_ros/srv/GetDepth '
             '"{pixels: [{x: 320, y: 240}, {x: 100, y: 50}]}"',
    "pose": 'ros2 service call /vlm3_perception/estimate_pose vlm3_ros/srv/EstimatePose '
            '"{frame_a: {mode: 3}, frame_b: {mode: 0}, with_distance: true}"',
    "corr": 'ros2 service call /vlm3_perception/find_correspondence vlm3_ros/srv/FindCorrespondence '
            '"{frame_a: {mode: 3}, frame_b: {mode: 0}, pixels_a: [{x: 200, y: 150}]}"',
    "object": 'ros2 service call /vlm3_perception/object_query vlm3_ros/srv/ObjectQuery '
              '"{regions: [{x_min: 40, y_min: 200, x_max: 200, y_max: 400}, '
              '{x_min: 380, y_min: 120, x_max: 600, y_max: 300}], '
              'question: \'How far is Region [0] from Region [1]?\'}"',
}
ECHO_CLOUD = "ros2 topic echo --once /vlm3_perception/sparse_depth sensor_msgs/msg/PointCloud2"
ECHO_ODOM = "ros2 topic echo --once /vlm3_perception/odom nav_msgs/msg/Odometry"
PLAY = ("vlm3-ros play BAG --publish-image-as /front/color/image_raw "
        "--publish-camera-info-as /front/color/camera_info")
DOCUMENTED = (LAUNCH, LIFECYCLE_GET, PARAM_GET_ARG, PARAM_SET_LIVE, PARAM_SET_BAD, PARAM_SET_CONFIGURE,
              *CALLS.values(), ECHO_CLOUD, ECHO_ODOM, PLAY)

# The robot's file: the camera topics are overridden by the launch arguments above; qos_depth is
# given only here (kept); sparse_depth.rate_hz is given here and as an argument (the argument wins).
MY_ROBOT_YAML = """\
/**/vlm3_perception:
  ros__parameters:
    image_topic: /camera/rgb/image_color
    camera_info_topic: /camera/rgb/camera_info
    qos_reliability: reliable
    qos_depth: 7
    backend: ground_truth
    ground_truth.bag: {bag}
    sparse_depth.rate_hz: 2.0
    sparse_depth.grid_cols: 4
    sparse_depth.grid_rows: 3
    vo.rate_hz: 5.0
    vo.keyframe_min_translation_m: 0.0
    vo.min_baseline_m: 0.0
    vo.use_tf_static: false
    camera_timeout_s: 60.0
"""


@pytest.fixture(scope="module")
def robot(tmp_path_factory, own_domain_env: dict[str, str]) -> Iterator[tuple[Ros2Cli, CommandProcess, dict[str, str]]]:
    """The node launched as documented; the bag played once on the remapped camera topics while
    ``ros2 topic echo --once`` waits on both outputs. Yields (ros2, launch, echo outputs)."""
    folder = tmp_path_factory.mktemp("my_robot")
    (folder / "my_robot.yaml").write_text(MY_ROBOT_YAML.format(bag=BAG_PATHS["mcap"]))
    ros2 = Ros2Cli(own_domain_env, folder)
    launch = ros2.start(LAUNCH, folder / "launch.log")
    echoes: list[CommandProcess] = []
    player = None
    try:
        launch.wait_for_log("]: active", timeout=90)
        # what a user sees first: the node's topics (the ros2 daemon starts and learns the graph).
        # The echoes name the type: without it, an echo whose graph view lacks the topic yet exits
        # with "Could not determine the type" (seen on Jazzy even after the topic was listed).
        topics = ros2.until("ros2 topic list", "/vlm3_perception/sparse_depth", timeout=30)
        assert "/vlm3_perception/odom" in topics, topics
        echoes = [ros2.start(line, folder / f"echo_{i}.log") for i, line in enumerate((ECHO_CLOUD, ECHO_ODOM))]
        ros2.until("ros2 topic info /vlm3_perception/odom", "Subscription count: 1", timeout=30)
        ros2.until("ros2 topic info /vlm3_perception/sparse_depth", "Subscription count: 1", timeout=30)
        # 1.1 s of bag over 11 s: five frames, each one a cloud and an odometry update.
        play = PLAY.replace("BAG", str(BAG_PATHS["mcap"])) + " --rate 0.1 --depth-topic '' --no-tf"
        player = CommandProcess(["bash", "-c", play], ros2.env, folder / "play.log", cwd=folder).start()
        for echo in echoes:
            echo.wait(60)
        player.wait_for_log("loop 1/1 done", timeout=60)
        yield ros2, launch, {"cloud": echoes[0].log_text(), "odom": echoes[1].log_text()}
    finally:
        for proc in [*echoes, *([player] if player else [])]:
            proc.stop()
        launch.stop()
        ros2.stop_daemon()


def test_docs_show_the_commands_tested_here() -> None:
    for doc in DOCS:
        text = doc.read_text()
        missing = [line for line in DOCUMENTED if line not in text]
        assert not missing, f"{doc.name} lacks the tested command lines {missing}"


def test_launch_autostarts_with_the_params_file_and_the_arguments(robot) -> None:
    ros2, _, _ = robot
    assert "active [3]" in ros2.until(LIFECYCLE_GET, "active", timeout=30)
    # given as an argument: wins over the file's 2.0
    assert "Double value is: 5.0" in ros2.until(PARAM_GET_ARG, "value is", timeout=20)
    # given only in the file: kept
    assert "Integer value is: 7" in ros2.until(PARAM_GET_FILE, "value is", timeout=20)
    # the camera topics are the arguments' (remapped from the file's), and the node listens there
    assert "String value is: /front/color/image_raw" in ros2.run("ros2 param get /vlm3_perception image_topic").stdout
    info = ros2.run("ros2 topic info /front/color/image_raw").stdout
    assert "Subscription count: 1" in info, info


def test_topic_echo_once_gets_the_cloud_and_the_odometry(robot) -> None:
    _, _, echoed = robot
    cloud, odom = echoed["cloud"], echoed["odom"]
    assert "frame_id: camera_rgb_optical_frame" in cloud and "width: 12" in cloud, cloud[:2000]
    assert "frame_id: odom" in odom and "child_frame_id: base_link" in odom, odom[:2000]


@pytest.mark.parametrize("task", list(CALLS))
def test_service_call_with_the_documented_yaml(robot, task: str) -> None:
    ros2, _, _ = robot
    done = ros2.run(CALLS[task], timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "response:" in out and "success=True" in out, out
    assert re.search(r"status=vlm3_ros\.msg\.Status\(code=0\b", out), out


def test_param_set_live_bad_and_read_at_configure(robot) -> None:
    ros2, _, _ = robot

    def said(line: str) -> str:
        done = ros2.run(line)
        return done.stdout + done.stderr  # ros2 param set reports a refusal on stderr

    assert "Set parameter successful" in said(PARAM_SET_LIVE)
    assert "Double value is: 30.0" in said("ros2 param get /vlm3_perception request_timeout_s")
    bad = said(PARAM_SET_BAD)
    assert "Setting parameter failed" in bad and "max_points_per_request out of range" in bad, bad
    assert "Integer value is: 256" in said("ros2 param get /vlm3_perception max_points_per_request")
    fixed = said(PARAM_SET_CONFIGURE)
    assert "Setting parameter failed" in fixed and "image_topic is read at configure" in fixed, fixed
    assert "String value is: /front/color/image_raw" in said("ros2 param get /vlm3_perception image_topic")


def test_ctrl_c_through_ros2_launch_stops_cleanly(robot) -> None:
    """Last in this module: it stops the node the tests above used."""
    _, launch, _ = robot
    launch.ctrl_c()
    assert launch.wait(30) == 0, launch.log_text()
    log = launch.log_text()
    assert "Traceback" not in log and "[ERROR]" not in log and "process has died" not in log, log
    assert "process has finished cleanly" in log and "stopped cleanly" in log, log
