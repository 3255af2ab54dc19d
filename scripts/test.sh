#!/usr/bin/env bash
# vlm3_ros test command: make sure the environment is set up and built (runs scripts/setup.sh,
# which is a no-op apart from an incremental colcon build when nothing changed), then ruff and
# the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
case "${1:-}" in
  -h|--help)
    echo "Usage: scripts/test.sh [PYTEST_ARGS...]"
    echo "  Sets up and builds when needed, runs 'ruff check' and the whole pytest suite."
    exit 0 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
"$root/scripts/setup.sh" --no-demo
# shellcheck disable=SC1091
source "$root/scripts/env.sh" --loopback
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[test] pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$rc"
