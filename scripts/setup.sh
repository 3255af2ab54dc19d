#!/usr/bin/env bash
# vlm3_ros setup: virtual environment, pinned packages, build of the interfaces and the package,
# offline test assets, then the demo (the perception node fed the bundled real bag).
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/setup.sh [--no-demo] [--build-only] [--help]

  Creates .venv, installs pinned ROS 2 Kilted wheels (or uses a sourced ROS 2 install) and the
  Python dependencies, builds tf2_msgs into the environment when it is missing, builds vlm3_ros
  with colcon into install/, makes the offline tokenizer and tiny checkpoint under
  .cache/vlm3_ros/, and runs the demo.

  --no-demo     stop after building
  --build-only  only re-run colcon (fast path used by scripts/test.sh)
  --help        this text
USAGE
}
demo=1; build_only=0
for arg in "$@"; do
  case "$arg" in
    --no-demo) demo=0 ;;
    --build-only) build_only=1; demo=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv"
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# 1. Which ROS 2: a sourced install (ROS_DISTRO set and rclpy importable) or the wheels.
system_ros=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  system_ros=1
  log "using the sourced ROS 2 ${ROS_DISTRO}"
fi
if [ "$system_ros" = 0 ]; then
  # Wheel mode: nothing from another environment (an activated venv, another checkout's colcon
  # install on PYTHONPATH) may leak into pip's view of what is installed or into the build.
  unset PYTHONPATH VIRTUAL_ENV AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH VLM3_VENV VLM3_CACHE
fi
py=python3
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup.sh: Python >= 3.10 is needed, found $($py --version 2>&1)" >&2; exit 1
fi

if [ "$build_only" = 0 ]; then
  # 2. Virtual environment.
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    if [ "$system_ros" = 1 ]; then "$py" -m venv --system-site-packages "$venv"; else "$py" -m venv "$venv"; fi
  fi
  # 3. Packages, skipped when the requirement files have not changed since the last install.
  reqs=(requirements/base.txt)
  if [ "$system_ros" = 0 ]; then
    reqs=(requirements/ros-wheels.txt "${reqs[@]}")
    if ! "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
      echo "setup.sh: the ROS 2 Kilted wheels are built for CPython 3.11; this Python is" \
           "$("$venv/bin/python" --version). Source a ROS 2 install instead, or use Python 3.11." >&2
      exit 1
    fi
  fi
  stamp="$venv/.vlm3_ros_requirements"
  want="$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing pinned packages (${reqs[*]})"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]/#/-r}"
    echo "$want" > "$stamp"
  else
    log "packages up to date"
  fi
  if [ "$system_ros" = 0 ]; then
    touch "$venv/.vlm3_ros_wheels"
    # 4. The wheels' exported CMake files name the wheel builder's Python and numpy include
    #    directories; CMake rejects targets whose include dirs do not exist.
    "$venv/bin/python" "$root/scripts/fix_wheel_cmake.py" "$venv"
  else
    rm -f "$venv/.vlm3_ros_wheels"
  fi
fi

# shellcheck disable=SC1091
source "$root/scripts/env.sh"

# 5. tf2_msgs: no wheel exists; build it from its definition into the environment's prefix.
if ! python -c 'import tf2_msgs.msg' >/dev/null 2>&1; then
  if [ "$system_ros" = 1 ]; then
    echo "setup.sh: the sourced ROS 2 has no tf2_msgs; install ros-${ROS_DISTRO}-tf2-msgs" >&2; exit 1
  fi
  log "building tf2_msgs into $venv"
  tfws="$venv/.tf2_msgs_ws"
  rm -rf "$tfws"; mkdir -p "$tfws/src"
  cp -r "$root/scripts/interfaces/tf2_msgs" "$tfws/src/"
  (cd "$tfws" && colcon --log-base log build --merge-install --install-base "$venv" \
      --build-base build --event-handlers console_cohesion- status- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >"$tfws/build.log" 2>&1) \
    || { cat "$tfws/build.log" >&2; echo "setup.sh: building tf2_msgs failed (log above)" >&2; exit 1; }
  python -c 'import tf2_msgs.msg' || { echo "setup.sh: tf2_msgs built but does not import" >&2; exit 1; }
fi

# 6. vlm3_ros itself, in the workspace .ws/ whose src/vlm3_ros links back to this repository.
#    Why the link: CMake refuses to export include paths that lie inside the package's source
#    directory, and the venv's numpy headers do when the repository root is the source directory.
#    --symlink-install: edits to the Python sources need no rebuild (new files do).
log "colcon build vlm3_ros"
mkdir -p "$root/.ws/src"
ln -sfn ../.. "$root/.ws/src/vlm3_ros"
(cd "$root/.ws" && colcon --log-base log build --symlink-install --base-paths src \
  --event-handlers console_cohesion- status- \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$(command -v python)" >colcon_build.out 2>&1) \
  || { cat "$root/.ws/colcon_build.out" >&2; echo "setup.sh: colcon build failed (output above)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
python -c 'from vlm3_ros.srv import GetDepth, EstimatePose, FindCorrespondence, ObjectQuery' \
  || { echo "setup.sh: vlm3_ros interfaces do not import after the build" >&2; exit 1; }
log "vlm3_ros built (install/)"
[ "$build_only" = 1 ] && exit 0

# 7. Offline test assets: a real Qwen tokenizer and a tiny, UNTRAINED Qwen3-VL checkpoint.
log "offline assets in $VLM3_CACHE"
vlm3-ros make-test-checkpoint "$VLM3_CACHE/tiny_qwen3_vl"

# 8. The demo: the perception node fed the bundled real bag, answering its services and publishing
#    its outputs with the tiny UNTRAINED checkpoint (answers are nonsense; statuses say so).
if [ "$demo" = 1 ]; then
  log "demo: perception node on the bundled TUM bag with the tiny untrained checkpoint"
  vlm3-ros demo --out "$root/.cache/vlm3_ros/demo"
fi
log "done. Run the tests with: scripts/test.sh"
