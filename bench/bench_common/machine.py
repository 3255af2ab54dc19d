"""The record of the machine a benchmark ran on, written into every results file: CPU model and
cores, GPU name and memory, Python/torch/transformers versions, the commit, the date, and the
load on the machine when the run started (other processes slow a shared machine's runs)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gpu() -> tuple[str | None, float | None]:
    """(name, memory in GiB) of CUDA device 0, or (None, None) where there is none."""
    try:
        import torch
    except ImportError:
        return None, None
    if not torch.cuda.is_available():
        return None, None
    props = torch.cuda.get_device_properties(0)
    return props.name, round(props.total_memory / 2**30, 1)


def commit() -> tuple[str | None, bool | None]:
    """(the checkout's commit, whether vlm3_ros/ or bench/ differ from it); (None, None) outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()

    try:
        head = git("rev-parse", "--short=10", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "vlm3_ros", "bench"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head, dirty


def machine_record() -> dict[str, Any]:
    """Everything a reader needs to tell two results' machines and code apart."""
    gpu_name, gpu_gib = gpu()
    head, dirty = commit()
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
            "python": platform.python_version(), "torch": package_version("torch"),
            "transformers": package_version("transformers"), "gpu": gpu_name, "gpu_memory_gib": gpu_gib,
            "commit": head, "uncommitted_changes": dirty, "load_average_1min": load,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def describe(record: dict[str, Any]) -> str:
    """The record as one sentence for a Markdown results file."""
    at = "at an unknown commit" if record.get("commit") is None else f"at commit {record['commit']}" + (
        " with uncommitted changes in vlm3_ros/ or bench/" if record.get("uncommitted_changes") else "")
    gpu_part = (f", GPU {record['gpu']} ({record['gpu_memory_gib']} GiB)" if record.get("gpu") else ", no GPU")
    load = record.get("load_average_1min")
    return (f"Run {record['date']} {at}. Machine: {record['cpu_model']}, {record['cores']} cores visible"
            + (f" (load average {load} at the start)" if load is not None else "") + gpu_part
            + f"; Python {record['python']}, torch {record.get('torch') or '-'}, "
            f"transformers {record.get('transformers') or '-'}.")
