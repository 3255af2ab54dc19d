"""pip-installable form of the vlm3_ros Python package.

The ROS 2 build is CMakeLists.txt (colcon, ament_cmake): it generates the interfaces and installs
this same Python package plus the executables listed in resource/executables.txt. This file lets
the pure core and the command line (`vlm3-ros eval`, `vlm3-ros make-test-checkpoint`) be installed
with plain pip where no ROS 2 build is wanted; nodes and interfaces still need the colcon build.
See docs/build.md.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def console_scripts() -> list[str]:
    scripts = []
    for line in (HERE / "resource" / "executables.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, target = line.split()
            scripts.append(f"{name}={target}")
    return scripts


setup(
    name="vlm3_ros",
    version="0.1.0",
    description="VLM3 spatial perception (depth, pose, correspondence, spatial questions) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vlm3_ros", "vlm3_ros.*"]),
    package_data={"vlm3_ros": ["data/*", "data/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/vlm3_ros"]),
        ("share/vlm3_ros", ["package.xml", "resource/executables.txt"]),
        ("share/vlm3_ros/launch", [str(p) for p in sorted((HERE / "launch").glob("*.py"))]),
        ("share/vlm3_ros/config", [str(p) for p in sorted((HERE / "config").glob("*"))]),
    ],
    # Lower ends: apt's versions on Ubuntu 22.04 (Humble), measured to pass the core suite
    # (docs/build.md); rosbags has no apt package: the version CI runs.
    install_requires=["numpy>=1.21.5", "opencv-python-headless>=4.5.4", "pyyaml>=5.4.1", "scipy>=1.8.0",
                      "matplotlib>=3.5.1", "rosbags>=0.11.9", "tqdm"],
    entry_points={"console_scripts": console_scripts()},
)
