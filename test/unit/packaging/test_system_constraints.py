"""scripts/system_constraints.py pins exactly the distributions a --system-site-packages venv
inherits (apt's, the base interpreter's) and none of the venv's own, so the setup for an
apt-installed ROS 2 can never upgrade apt's numpy or OpenCV underneath rclpy and cv_bridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "system_constraints.py"
BASE_DISTS = (
    "import json, importlib.metadata as m; "
    "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-') + '==' + d.version "
    "for d in m.distributions() if d.metadata['Name']})))"
)


def test_constraints_are_the_inherited_distributions_only(tmp_path: Path) -> None:
    # without this run's PYTHONPATH (this venv, the colcon install): only the base's site-packages
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # a venv that sees the base interpreter's site-packages, plus one distribution of its own
    env_dir = tmp_path / "sysvenv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, env=env).stdout.strip())
    own = site / "vlm3_only_in_venv-1.0.dist-info"
    own.mkdir(parents=True)
    (own / "METADATA").write_text("Metadata-Version: 2.1\nName: vlm3-only-in-venv\nVersion: 1.0\n")
    out = subprocess.run([py, str(SCRIPT)], capture_output=True, text=True, check=True, env=env).stdout.split()
    base = json.loads(subprocess.run([sys.base_prefix + "/bin/python3", "-c", BASE_DISTS],
                                     capture_output=True, text=True, check=True, env=env).stdout)
    assert all(line.count("==") == 1 for line in out), out
    assert "vlm3-only-in-venv==1.0" not in out
    # what the base interpreter has (pip at least, with pyenv/apt Pythons) is pinned, at its version
    assert set(out) == set(base), (set(out) ^ set(base))
    assert any(line.startswith("pip==") for line in out) or not any(b.startswith("pip==") for b in base)
