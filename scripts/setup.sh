#!/usr/bin/env bash
# vlm3_ros setup: virtual environment, pinned packages, build of the interfaces and the package,
# offline test assets, then the demo (the perception node fed the bundled real bag).
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/setup.sh [--distro kilted|jazzy|core] [--python PYTHON] [--no-demo] [--build-only]
                        [--packages-only] [--help]

  Creates the virtual environment, installs the pinned ROS 2 wheels of the chosen distro (or uses
  a sourced ROS 2 install) and the Python dependencies (with the wheels: also the ros2 launch and
  CLI test tools of third_party/ros2-python/), builds tf2_msgs (and composition_interfaces) into the
  environment when missing, builds vlm3_ros with colcon, makes the offline tokenizer and tiny
  checkpoint under .cache/vlm3_ros/, and runs the demo.

  --distro D    ROS 2 from wheels: kilted (default, the newest with wheels; CPython 3.11, .venv/
                and .ws/) or jazzy (CPython 3.12, .venv-jazzy/ and .ws-jazzy/); or core: no ROS 2,
                CPython 3.10 with the newest transformers for 3.10 (.venv-core/), the pure core
                as Humble and JetPack 6 run it (no Humble wheels exist). Also VLM3_DISTRO=D.
                Ignored when a ROS 2 install is sourced: that one is used (docs/build.md).
  --python P    the interpreter for the venv (default: python3.11 / 3.12 / 3.10 by distro, found
                on PATH or under pyenv)
  --no-demo     stop after building
  --build-only  only re-run colcon (fast path used by scripts/test.sh)
  --packages-only  only the virtual environment and its pinned packages (scripts/test.sh --all
                installs the three distros' packages at once: pip mostly waits on the network
                and the disk, so they overlap)
  --help        this text
USAGE
}
demo=1; build_only=0; packages_only=0; python_arg=""
distro="${VLM3_DISTRO:-kilted}"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-demo) demo=0 ;;
    --build-only) build_only=1; demo=0 ;;
    --packages-only) packages_only=1; demo=0 ;;
    --distro) distro="${2:-}"; shift ;;
    --distro=*) distro="${1#--distro=}" ;;
    --python) python_arg="${2:-}"; shift ;;
    --python=*) python_arg="${1#--python=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$distro" in
  kilted) want_py=3.11 ;;
  jazzy) want_py=3.12 ;;
  core) want_py=3.10 ;;
  system) want_py="" ;;   # a sourced ROS 2 install (what env.sh calls it)
  *) echo "setup.sh: --distro must be kilted, jazzy or core (got '$distro'); Humble has no wheels:" \
          "source an apt-installed Humble instead (docs/build.md)" >&2; exit 2 ;;
esac
export VLM3_DISTRO="$distro"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

# 1. Which ROS 2: a sourced install (ROS_DISTRO set and rclpy importable) or the wheels.
system_ros=0
if [ "$distro" != core ] && [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  system_ros=1
  export VLM3_DISTRO="system"
  log "using the sourced ROS 2 ${ROS_DISTRO} and its Python"
fi
if [ "$system_ros" = 0 ] && [ "$distro" = system ]; then
  echo "setup.sh: VLM3_DISTRO=system needs a sourced ROS 2 install (source /opt/ros/<distro>/setup.bash)," \
       "or choose --distro kilted|jazzy|core" >&2
  exit 2
fi
if [ "$system_ros" = 0 ]; then
  # Wheel mode: nothing from another environment (an activated venv, another checkout's colcon
  # install on PYTHONPATH) may leak into pip's view of what is installed or into the build.
  unset PYTHONPATH VIRTUAL_ENV AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH VLM3_VENV VLM3_CACHE
  if [ "$distro" = core ]; then log "the pure core on Python ${want_py}, no ROS 2"; else log "ROS 2 ${distro} from wheels"; fi
fi
# The venv and workspace of this distro (scripts/env.sh picks the same by VLM3_DISTRO).
# shellcheck disable=SC1091
VLM3_ROOT="$root" source "$root/scripts/distro.sh"
venv="$VLM3_VENV"

find_python() {  # the interpreter of version $1: on PATH, else pyenv's newest of that version
  local v="$1" c
  for c in "python$v" "$HOME"/.pyenv/versions/"$v".*/bin/python; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$v' else 1)" 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
if [ "$system_ros" = 1 ]; then
  py=python3   # the Python apt's ROS 2 packages were built for
elif [ -n "$python_arg" ]; then
  py="$python_arg"
else
  py="$(find_python "$want_py")" || {
    echo "setup.sh: the ROS 2 ${distro} wheels need CPython ${want_py}; none found on PATH or under pyenv." \
         "Install it (pyenv install ${want_py}) or pass --python" >&2; exit 1; }
fi
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
  pip_extra=()
  if [ "$system_ros" = 0 ]; then
    have="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ "$have" != "$want_py" ] && [ -z "$python_arg" ]; then
      echo "setup.sh: $venv has Python $have; the ${distro} setup uses ${want_py}. Remove $venv or pass --python" >&2
      exit 1
    fi
  fi
  if [ "$distro" = core ]; then
    reqs=(requirements/core-py310.txt)
  elif [ "$system_ros" = 0 ]; then
    reqs=("requirements/ros-${distro}.txt" "${reqs[@]}")
  else
    # apt's ROS 2 Python packages (numpy, OpenCV, yaml, ...) stay as apt installed them: the venv
    # sees them (--system-site-packages) and pip may not replace them (constraints from their
    # installed versions), so rclpy, cv_bridge and friends keep the numpy they were built with.
    reqs=(requirements/system-ros.txt)
    "$venv/bin/python" "$root/scripts/system_constraints.py" > "$venv/system-constraints.txt"
    pip_extra=(-c "$venv/system-constraints.txt")
  fi
  # Test tooling of the wheel distros: ROS 2's launch, launch_ros, ros2launch, ros2cli and its verbs
  # (lifecycle, param, service, topic, ...), built unchanged from upstream (third_party/ros2-python/,
  # no registry has them), so the tests run `ros2 launch` and the `ros2` commands a user types. An
  # apt-installed ROS 2 has the real ones; a wheels-only user keeps `vlm3-ros bringup`.
  tool_wheels=()
  if [ "$system_ros" = 0 ] && [ "$distro" != core ]; then
    reqs+=(requirements/ros2-tools.txt)
    tool_wheels=("$root/third_party/ros2-python/${distro}/"*.whl)
  fi
  stamp="$venv/.vlm3_ros_requirements"
  want="$({ cat "${reqs[@]}"; [ "${#tool_wheels[@]}" = 0 ] || printf '%s\n' "${tool_wheels[@]##*/}"; } | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing pinned packages (${reqs[*]})"
    "$venv/bin/python" -m pip install -qq --disable-pip-version-check "${pip_extra[@]}" "${reqs[@]/#/-r}"
    if [ "${#tool_wheels[@]}" -gt 0 ]; then
      log "installing the ros2 launch/CLI test tools (third_party/ros2-python/${distro})"
      "$venv/bin/python" -m pip install -qq --disable-pip-version-check --no-deps "${tool_wheels[@]}"
    fi
    if [ "$distro" = core ]; then
      # setup.py: the pure core and the command line without a ROS build, as on Humble/JetPack.
      "$venv/bin/python" -m pip install -qq --disable-pip-version-check --no-deps --no-build-isolation -e .
    fi
    echo "$want" > "$stamp"
  else
    log "packages up to date"
  fi
  if [ "$distro" = core ]; then
    rm -f "$venv/.vlm3_ros_wheels"
  elif [ "$system_ros" = 0 ]; then
    touch "$venv/.vlm3_ros_wheels"
    # 4. The wheels' exported CMake files name the wheel builder's Python and numpy include
    #    directories; CMake rejects targets whose include dirs do not exist.
    "$venv/bin/python" "$root/scripts/fix_wheel_cmake.py" "$venv"
  else
    rm -f "$venv/.vlm3_ros_wheels"
  fi
fi
if [ "$packages_only" = 1 ]; then
  log "packages installed in $venv (--packages-only)"
  exit 0
fi

# shellcheck disable=SC1091
source "$root/scripts/env.sh"

if [ "$distro" = core ]; then
  # No ROS 2 here: nothing to build; the offline assets are the core's own (its transformers).
  log "offline assets in $VLM3_CACHE"
  vlm3-ros make-test-checkpoint "$VLM3_CACHE/tiny_qwen3_vl"
  vlm3-ros make-demo-model --no-score
  log "done (core: no nodes, no demo). Run its tests with: scripts/test.sh --distro core"
  exit 0
fi

# 5. Interface packages no wheel has, built from their definitions into the environment's prefix:
#    tf2_msgs (the node publishes /tf), and in wheel mode composition_interfaces (launch_ros imports
#    it; the ros2 launch test tooling of step 3).
interface_src=()
if ! python -c 'import tf2_msgs.msg' >/dev/null 2>&1; then
  if [ "$system_ros" = 1 ]; then
    echo "setup.sh: the sourced ROS 2 has no tf2_msgs; install ros-${ROS_DISTRO}-tf2-msgs" >&2; exit 1
  fi
  interface_src+=("$root/scripts/interfaces/tf2_msgs")
fi
if [ "$system_ros" = 0 ] && ! python -c 'import composition_interfaces.srv' >/dev/null 2>&1; then
  interface_src+=("$root/third_party/ros2-python/interfaces/composition_interfaces")
fi
if [ "${#interface_src[@]}" -gt 0 ]; then
  log "building ${interface_src[*]##*/} into $venv"
  ifws="$venv/.interfaces_ws"
  rm -rf "$ifws"; mkdir -p "$ifws/src"
  cp -r "${interface_src[@]}" "$ifws/src/"
  (cd "$ifws" && colcon --log-base log build --merge-install --install-base "$venv" \
      --build-base build --event-handlers console_cohesion- status- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >"$ifws/build.log" 2>&1) \
    || { cat "$ifws/build.log" >&2; echo "setup.sh: building ${interface_src[*]##*/} failed (log above)" >&2; exit 1; }
  python -c 'import tf2_msgs.msg' || { echo "setup.sh: tf2_msgs built but does not import" >&2; exit 1; }
  if [ "$system_ros" = 0 ]; then
    python -c 'import composition_interfaces.srv' \
      || { echo "setup.sh: composition_interfaces built but does not import" >&2; exit 1; }
  fi
fi

# 6. vlm3_ros itself, in the workspace .ws/ (.ws-<distro>/) whose src/vlm3_ros links back to this repository.
#    Why the link: CMake refuses to export include paths that lie inside the package's source
#    directory, and the venv's numpy headers do when the repository root is the source directory.
#    --symlink-install: edits to the Python sources need no rebuild (new files do).
log "colcon build vlm3_ros"
ws="$VLM3_WS"
mkdir -p "$ws/src"
ln -sfn ../.. "$ws/src/vlm3_ros"
(cd "$ws" && colcon --log-base log build --symlink-install --base-paths src \
  --event-handlers console_cohesion- status- \
  --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$(command -v python)" >colcon_build.out 2>&1) \
  || { cat "$ws/colcon_build.out" >&2; echo "setup.sh: colcon build failed (output above)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$root/scripts/env.sh"
python -c 'from vlm3_ros.srv import GetDepth, EstimatePose, FindCorrespondence, ObjectQuery' \
  || { echo "setup.sh: vlm3_ros interfaces do not import after the build" >&2; exit 1; }
log "vlm3_ros built (install/)"
[ "$build_only" = 1 ] && exit 0

# 7. Offline test assets: a real Qwen tokenizer, a tiny UNTRAINED Qwen3-VL checkpoint and the TOY
#    demo model (that architecture fine-tuned here on the bundled bag; NOT VLM3), rebuilt from the
#    trained weights kept in vlm3_ros/data/toy_model/ and scored on the bag's held-out frames.
log "offline assets in $VLM3_CACHE"
vlm3-ros make-test-checkpoint "$VLM3_CACHE/tiny_qwen3_vl"
# held-out scores only where the demo runs (test/model/test_toy_model.py scores it in the tests)
if [ "$demo" = 1 ]; then vlm3-ros make-demo-model; else vlm3-ros make-demo-model --no-score; fi

# 8. The demo: the perception node fed the bundled real bag, answering its services and publishing
#    its outputs with the TOY model (answers in the contract's formats; numbers near a constant's).
if [ "$demo" = 1 ]; then
  log "demo: perception node on the bundled TUM bag with the TOY demo model (not VLM3)"
  vlm3-ros demo --out "$root/.cache/vlm3_ros/demo"
fi
log "done. Run the tests with: scripts/test.sh --all (every distro, as CI), or scripts/test.sh (this one)"
