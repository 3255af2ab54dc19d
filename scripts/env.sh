# shellcheck shell=bash
# Source this to get the environment vlm3_ros's setup built: the virtual environment, the ament
# prefixes of the ROS 2 wheels, the colcon install of vlm3_ros, and the model hub switched off.
#   source scripts/env.sh              on a robot: DDS settings stay yours (ROS_DOMAIN_ID,
#                                      RMW_IMPLEMENTATION, discovery range, Fast DDS profiles)
#   source scripts/env.sh --loopback   tests and CI: DDS on this machine only (loopback profile)
# colcon's and venv's setup scripts read unset variables: relax nounset while sourcing them.
_vlm3_nounset="$(set +o | grep nounset)"
set +u
_vlm3_here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VLM3_ROOT="${_vlm3_here}"
# Always this checkout's: values inherited from another checkout's environment must not leak in.
# VLM3_DISTRO (kilted by default, jazzy, or core: Python 3.10 without ROS 2) picks the venv and
# workspace scripts/setup.sh built; switching it in one shell drops the other one's paths first.
if [ -n "${ROS_DISTRO:-}" ] && [ ! -f "${VLM3_ROOT}/.venv/.vlm3_ros_wheels" ] && [ -z "${VLM3_DISTRO:-}" ]; then
  export VLM3_DISTRO=system   # a sourced ROS 2 install
fi
export VLM3_DISTRO="${VLM3_DISTRO:-kilted}"
# shellcheck disable=SC1091
source "${VLM3_ROOT}/scripts/distro.sh"
vlm3_forget_checkouts

if [ -f "${VLM3_VENV}/bin/activate" ]; then
  # shellcheck disable=SC1091
  VIRTUAL_ENV_DISABLE_PROMPT=1 source "${VLM3_VENV}/bin/activate"
fi
if [ "${VLM3_DISTRO}" != core ] && { [ -z "${ROS_DISTRO:-}" ] || [ -f "${VLM3_VENV}/.vlm3_ros_wheels" ]; }; then
  # ROS 2 from wheels: the wheels install share/ and lib/ under the venv prefix.
  export AMENT_PREFIX_PATH="${VLM3_VENV}${AMENT_PREFIX_PATH:+:${AMENT_PREFIX_PATH}}"
  export CMAKE_PREFIX_PATH="${VLM3_VENV}${CMAKE_PREFIX_PATH:+:${CMAKE_PREFIX_PATH}}"
  export LD_LIBRARY_PATH="${VLM3_VENV}/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}"
fi
if [ -n "${VLM3_WS}" ] && [ -f "${VLM3_WS}/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "${VLM3_WS}/install/setup.bash"
  # `ros2 run vlm3_ros X` looks in lib/vlm3_ros; without the ros2 CLI, put them on PATH.
  export PATH="${VLM3_WS}/install/vlm3_ros/lib/vlm3_ros:${PATH}"
fi

export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
if [ "${1:-}" = "--loopback" ]; then
  # Only for tests and CI: other machines can neither see nor disturb these nodes.
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export FASTDDS_DEFAULT_PROFILES_FILE="${VLM3_ROOT}/config/fastdds_loopback.xml"
  if [ "${VLM3_DISTRO}" = jazzy ] || [ "${ROS_DISTRO:-}" = jazzy ] || [ "${ROS_DISTRO:-}" = humble ]; then
    # Fast DDS 2.x (Jazzy, Humble) reads only the old name; Fast DDS 3 (Kilted) warns about it.
    export FASTRTPS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE}"
  fi
fi
export HF_HUB_OFFLINE=1
export HF_HUB_DISABLE_UPDATE_CHECK=1
export TRANSFORMERS_NO_ADVISORY_WARNINGS=1
export HF_HOME="${HF_HOME:-${VLM3_CACHE}/hf_home}"
eval "${_vlm3_nounset}"
unset _vlm3_here _vlm3_nounset
