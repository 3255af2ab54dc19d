# shellcheck shell=bash
# The virtual environment, colcon workspace and asset cache of VLM3_DISTRO, sourced by setup.sh,
# env.sh and test.sh:
#   kilted (default) or a sourced ROS 2 ("system")  ->  .venv/        .ws/        .cache/vlm3_ros/
#   jazzy                                            ->  .venv-jazzy/  .ws-jazzy/  .cache/vlm3_ros/
#   core (Python 3.10, no ROS 2: the Humble-ready    ->  .venv-core/   (none)      .cache/vlm3_ros-core/
#         core with the newest transformers for 3.10)
# One checkout holds them side by side (CI tests all three); pip's package cache is shared.
export VLM3_ROOT="${VLM3_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
_vlm3_root="$VLM3_ROOT"
case "${VLM3_DISTRO:-kilted}" in
  kilted|system) export VLM3_VENV="${_vlm3_root}/.venv" VLM3_WS="${_vlm3_root}/.ws"
                 export VLM3_CACHE="${_vlm3_root}/.cache/vlm3_ros" ;;
  core) export VLM3_VENV="${_vlm3_root}/.venv-core" VLM3_WS=""
        # its own tiny checkpoint, written by the transformers it tests
        export VLM3_CACHE="${_vlm3_root}/.cache/vlm3_ros-core" ;;
  *) export VLM3_VENV="${_vlm3_root}/.venv-${VLM3_DISTRO}" VLM3_WS="${_vlm3_root}/.ws-${VLM3_DISTRO}"
     export VLM3_CACHE="${_vlm3_root}/.cache/vlm3_ros" ;;
esac

# vlm3_forget_checkouts: drop every path this checkout's venvs and workspaces put on the search
# variables, so switching distro in one shell (or a test run started from an activated shell)
# cannot mix Kilted and Jazzy libraries.
vlm3_forget_checkouts() {
  local var value kept part
  for var in PATH LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH; do
    value="${!var:-}"
    kept=""
    IFS=: read -ra _parts <<< "$value"
    for part in "${_parts[@]}"; do
      case "$part" in
        "${VLM3_ROOT}"/.venv*|"${VLM3_ROOT}"/.ws*|"") ;;
        *) kept="${kept:+${kept}:}${part}" ;;
      esac
    done
    if [ -n "$kept" ]; then export "$var=$kept"; else unset "$var"; fi
  done
  unset VIRTUAL_ENV _parts
}
unset _vlm3_root
