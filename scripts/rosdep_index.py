"""Extract what rosdep can resolve from a ros/rosdistro checkout into test/data/rosdep/index.json.gz:
every system key of rosdep/base.yaml and rosdep/python.yaml with how it installs on the Ubuntu
release of each ROS 2 distro (apt package names, pip, or not at all), and the released package
names of Humble, Jazzy and Kilted (installed as ros-<distro>-<name>). test/unit/package checks
package.xml against it, so a key rosdep does not know fails a test instead of a user's
`rosdep install`. Data: ros/rosdistro (BSD-3-Clause, licence copied beside the index).

Usage: python scripts/rosdep_index.py ROSDISTRO_GIT_DIR_OR_CHECKOUT [OUT_JSON]
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import yaml

# the Ubuntu release each ROS 2 distro targets (REP 2000)
DISTRO_UBUNTU = {"humble": "jammy", "jazzy": "noble", "kilted": "noble"}
INSTALLERS = ("apt", "pip", "source")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "test" / "data" / "rosdep" / "index.json.gz"


def read(repo: Path, path: str) -> tuple[str, str]:
    """(text, commit) of one file from a checkout or a bare git directory."""
    if (repo / path).is_file():
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        return (repo / path).read_text(), commit
    git = ["git", f"--git-dir={repo}"]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run([*git, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout
    return text, commit


def ubuntu_rule(rule: object, codename: str) -> str | None:
    """How a rosdep rule installs on one Ubuntu release: 'apt', 'pip', 'source', or None."""
    if not isinstance(rule, dict) or "ubuntu" not in rule:
        return None
    u = rule["ubuntu"]
    if isinstance(u, dict) and not any(k in u for k in INSTALLERS):
        u = u.get(codename, u.get("*"))
    if not u:
        return None
    if isinstance(u, (list, str)):
        return "apt"
    if isinstance(u, dict):
        for installer in INSTALLERS:
            if installer in u:
                spec = u[installer]
                pkgs = spec.get("packages", []) if isinstance(spec, dict) else spec
                return installer if pkgs or installer == "source" else None
    return None


def released_packages(distribution: dict) -> list[str]:
    names: set[str] = set()
    for repo_name, repo in (distribution.get("repositories") or {}).items():
        release = (repo or {}).get("release")
        if not release:
            continue
        names.update(release.get("packages") or [repo_name])   # REP 143: no list = one package
    return sorted(names)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    repo = Path(argv[1])
    out = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    keys: dict[str, dict[str, str]] = {}
    commit = ""
    for path in ("rosdep/base.yaml", "rosdep/python.yaml"):
        text, commit = read(repo, path)
        for key, rule in (yaml.safe_load(text) or {}).items():
            how = {c: ubuntu_rule(rule, c) for c in sorted(set(DISTRO_UBUNTU.values()))}
            keys[key] = {c: m for c, m in how.items() if m}   # {} = rosdep knows it, not on Ubuntu
    packages = {}
    for distro in DISTRO_UBUNTU:
        text, _ = read(repo, f"{distro}/distribution.yaml")
        packages[distro] = released_packages(yaml.safe_load(text))
    index = {
        "source": f"https://github.com/ros/rosdistro at {commit} (BSD-3-Clause, see LICENSE.rosdistro)",
        "distro_ubuntu": DISTRO_UBUNTU,
        "keys": keys,
        "packages": packages,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # gzip with a fixed mtime: the same rosdistro commit gives the same bytes
    out.write_bytes(gzip.compress(json.dumps(index, sort_keys=True, indent=0).encode(), mtime=0))
    print(f"rosdep_index: {len(keys)} keys, " + ", ".join(f"{d} {len(p)} packages" for d, p in packages.items())
          + f" -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
