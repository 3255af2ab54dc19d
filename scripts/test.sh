#!/usr/bin/env bash
# vlm3_ros test command: make sure the environment is set up and built (runs scripts/setup.sh,
# which is a no-op apart from an incremental colcon build when nothing changed), then ruff and
# the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/test.sh [--distro kilted|jazzy|core | --all] [PYTEST_ARGS...]

  Sets up and builds when needed (scripts/setup.sh --no-demo), runs 'ruff check' and pytest.

  (default)       the whole suite on the default distro, Kilted (CPython 3.11 wheels)
  --distro jazzy  the whole suite on the Jazzy wheels (CPython 3.12)
  --distro core   the pure core's suite (test/unit, test/model) on CPython 3.10 without ROS 2,
                  with the newest transformers for 3.10: what Humble and JetPack 6 run
  --all           all three, each in its own environment: Kilted first (Jazzy's and the core's
                  packages install in the background meanwhile), then Jazzy's and the core's
                  suites at the same time (the core's output after Jazzy's); the compiled
                  engine's tests (marker 'compiled') run on Kilted only; prints a summary
                  and fails if any failed (CI runs this)
  PYTEST_ARGS     passed to pytest (e.g. -k depth, -x)
USAGE
}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
distro="${VLM3_DISTRO:-kilted}"
all=0
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --all) all=1; shift ;;
  --distro) distro="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
  --distro=*) distro="${1#--distro=}"; shift ;;
esac
case "$distro" in kilted|jazzy|core|system) ;; *) echo "test.sh: unknown distro '$distro'" >&2; usage >&2; exit 2 ;; esac

if [ "$all" = 1 ]; then
  # Each run in a fresh process that starts from this shell's environment minus any venv or
  # workspace of this checkout (VLM3_ROOT=... source distro.sh's vlm3_forget_checkouts).
  clean_run() {  # clean_run DISTRO COMMAND...: COMMAND with only DISTRO's environment
    local d="$1"; shift
    (VLM3_ROOT="$root" VLM3_DISTRO="$d"; export VLM3_ROOT VLM3_DISTRO
     # shellcheck disable=SC1091
     source "$root/scripts/distro.sh"; vlm3_forget_checkouts
     # --all tests the wheels and the bare core: a sourced ROS 2 install must not leak in
     unset ROS_DISTRO ROS_VERSION ROS_PYTHON_VERSION PYTHONPATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH \
           COLCON_PREFIX_PATH
     exec "$@")
  }
  # Why Jazzy's and the core's packages install in the background: their torch is the CUDA build
  # (only CPython 3.11 has a CPU wheel on these machines), 3.4 GB of files each, and pip spends
  # that time on downloads and the disk. They start once Kilted's own packages are in (three
  # installs at once slowed each other down to the slowest of them) and overlap Kilted's build
  # and tests; each distro waits for its own before it builds and tests.
  logs="$root/.cache/test-all"
  mkdir -p "$logs"
  declare -A install_pid=()
  core_pid=""
  trap 'kill "${install_pid[@]}" ${core_pid} 2>/dev/null || true' INT TERM
  echo "[test --all] ===== kilted: packages ====="
  kilted_packages=0
  clean_run kilted "$root/scripts/setup.sh" --distro kilted --packages-only || kilted_packages=$?
  for d in jazzy core; do
    clean_run "$d" "$root/scripts/setup.sh" --distro "$d" --packages-only >"$logs/packages-$d.log" 2>&1 &
    install_pid[$d]=$!
  done
  summary=(); failed=0
  record() {  # record DISTRO RC SECONDS: one line of the summary
    local verdict=passed
    [ "$2" = 0 ] || { verdict="FAILED (exit $2)"; failed=1; }
    summary+=("$(printf '  %-7s %s in %dm%02ds' "$1" "$verdict" $(($3 / 60)) $(($3 % 60)))")
  }
  echo "[test --all] ===== kilted ====="
  start=$SECONDS
  rc=$kilted_packages
  set +e
  [ "$rc" = 0 ] && { clean_run kilted "$root/scripts/test.sh" --distro kilted "$@"; rc=$?; }
  set -e
  record kilted "$rc" $((SECONDS - start))
  # The compiled engine's tests (marker 'compiled': torch.compile from an empty cache, minutes on
  # two cores) run once per --all, on Kilted; Jazzy's and the core's runs deselect them.
  # Jazzy's and the core's suites run at the same time: a suite keeps about one core busy on
  # average (its CPU time is close to its wall time), and the core's (no ROS 2, no DDS)
  # cannot cross-talk with Jazzy's DDS tests. The core's output follows Jazzy's.
  declare -A packages_rc=()
  for d in jazzy core; do
    set +e
    wait "${install_pid[$d]}"
    packages_rc[$d]=$?
    set -e
    echo "[test --all] ===== ${d}: packages ====="
    cat "$logs/packages-$d.log"
    [ "${packages_rc[$d]}" = 0 ] || echo "[test --all] installing the ${d} packages failed (log above)" >&2
  done
  start=$SECONDS
  rm -f "$logs/core.rc"
  if [ "${packages_rc[core]}" = 0 ]; then
    (set +e; clean_run core "$root/scripts/test.sh" --distro core -m "not compiled" "$@" >"$logs/core.log" 2>&1
     echo "$? $((SECONDS - start))" >"$logs/core.rc") &
    core_pid=$!
  fi
  echo "[test --all] ===== jazzy (the core's suite runs meanwhile; its output follows) ====="
  rc=${packages_rc[jazzy]}
  set +e
  [ "$rc" = 0 ] && { clean_run jazzy "$root/scripts/test.sh" --distro jazzy -m "not compiled" "$@"; rc=$?; }
  set -e
  record jazzy "$rc" $((SECONDS - start))
  echo "[test --all] ===== core ====="
  if [ -n "$core_pid" ]; then
    wait "$core_pid" || true
    cat "$logs/core.log"
    read -r rc secs <"$logs/core.rc" 2>/dev/null || { rc=1; secs=$((SECONDS - start)); }
    record core "$rc" "$secs"
  else
    record core "${packages_rc[core]}" 0
  fi
  echo "[test --all] summary (kilted: whole suite, CPython 3.11; jazzy: whole suite, CPython 3.12;" \
       "core: test/unit + test/model, CPython 3.10, no ROS 2; jazzy's and core's packages installed" \
       "during kilted's run; jazzy's and core's suites at the same time):"
  printf '%s\n' "${summary[@]}"
  exit "$failed"
fi

if [ "$distro" = system ]; then "$root/scripts/setup.sh" --no-demo; else "$root/scripts/setup.sh" --distro "$distro" --no-demo; fi
export VLM3_DISTRO="$distro"
# shellcheck disable=SC1091
source "$root/scripts/env.sh" --loopback
# each distro's pytest temporary folders apart (--all runs Jazzy's and the core's suites at once)
export PYTEST_DEBUG_TEMPROOT="${PYTEST_DEBUG_TEMPROOT:-${TMPDIR:-/tmp}/vlm3-pytest-$distro}"
mkdir -p "$PYTEST_DEBUG_TEMPROOT"
paths=()
if [ "$distro" = core ]; then
  # No ROS 2 here: the DDS tests (test/ros) need it; everything below ros/ must pass without it.
  paths=(test/unit test/model)
else
  echo "[test] ruff check"
  ruff check .
fi
echo "[test] pytest (${distro})"
set +e
# the 25 slowest tests at the end of each log: what to look at when CI nears its 30-minute budget
python -m pytest --durations=25 "${paths[@]}" "$@"
rc=$?
if [ "$rc" -gt 128 ] && [ "$distro" != core ]; then
  # The pytest process itself died by a signal (134: SIGABRT), not a test: rclpy on Jazzy aborts
  # now and then inside its C++ layer (Client.call_async, Node creation; upstream ros2/rclpy#1453
  # reports the same shape). It never recurred when rerun (docs/status.md, "Jazzy aborts"), so the
  # suite runs once more, whole; a second crash, or any failing test, still fails.
  echo "[test] pytest (${distro}) died by signal $((rc - 128)) (exit $rc), not a test failure: the" \
       "faulthandler traceback is above (known rclpy abort, docs/status.md); running the suite once more" >&2
  python -m pytest "${paths[@]}" "$@"
  rc=$?
  [ "$rc" = 0 ] && echo "[test] pytest (${distro}) passed on the second run, after the crash above" >&2
fi
set -e
if [ "$rc" = 5 ]; then
  echo "[test] pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
