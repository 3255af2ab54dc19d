"""``vlm3-ros plan``: the node's memory plan without a GPU, the same numbers configure checks.

From a params file (and NAME:=VALUE overrides): each backend's weights, prefix cache, kept answer-
step graphs, batch keys/values and activations in MiB, and the total for all enabled tasks at
once; a checkpoint folder without a config.json is planned as Qwen3-VL-4B. With
--device-memory-gib, whether it fits that much free memory and, when not, the settings that
would (exit code 1).

  vlm3-ros plan --params-file my_robot.yaml --device-memory-gib 16
  vlm3-ros plan --params-file my_robot.yaml model.quantization:=int8 enabled_tasks:=[depth,pose]
  vlm3-ros plan --params-file my_robot.yaml --device-memory-gib 24 --precisions   # every precision
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vlm3_ros.inference.memory_plan import MIB, MemoryPlan
from vlm3_ros.params.config import ConfigError
from vlm3_ros.params.files import load_values
from vlm3_ros.params.mapping import memory_plan_of, settings_from
from vlm3_ros.params.node_settings import NodeSettings

PRECISION_SETTINGS = {"bfloat16": ("bfloat16", "none"), "float16": ("float16", "none"),
                      "int8": ("bfloat16", "int8"), "int4": ("bfloat16", "int4")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vlm3-ros plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="NAME:=VALUE", help="parameter overrides after the file")
    p.add_argument("--params-file", type=Path, default=None, help="the robot's params file (ros__parameters)")
    p.add_argument("--device", default=None, help="plan for this device (cpu, cuda, cuda:N); default: "
                   "model.device, with auto taken as cuda")
    p.add_argument("--device-memory-gib", type=float, default=None,
                   help="free device memory to check the plan against (GiB)")
    p.add_argument("--precisions", action="store_true",
                   help="also the total at every precision (bfloat16, float16, int8, int4), same settings")
    return p


def with_precision(settings: NodeSettings, dtype: str, quantization: str) -> NodeSettings:
    backends = {t: dataclasses.replace(c, dtype=dtype, quantization=quantization) for t, c in settings.backends.items()}
    return dataclasses.replace(settings, backends=backends)


def report(plan: MemoryPlan, free_gib: float | None) -> tuple[list[str], bool]:
    lines = [f"Memory plan on {plan.device} (MiB):", *plan.table(), *(f"note: {n}" for n in plan.notes)]
    if free_gib is None:
        return lines, True
    free = int(free_gib * 2**30)
    if plan.fits(free):
        lines.append(f"fits: {plan.total / MIB:.0f} MiB of {free / MIB:.0f} MiB free")
        return lines, True
    lines.append(f"does NOT fit: {plan.refusal(free)}")
    return lines, False


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        values = load_values(a.params_file, a.overrides)
        values.setdefault("backend", "transformers")
        settings = settings_from(values, require_backend=False)
    except ConfigError as e:
        print(f"vlm3-ros plan: {e}", file=sys.stderr)
        return 2
    if settings.backend != "transformers":
        print(f"vlm3-ros plan: backend {settings.backend} loads no model here: nothing to plan", file=sys.stderr)
        return 2
    device = a.device or next(iter(settings.backends.values())).device
    device = "cuda" if device == "auto" else device
    lines, fits = report(memory_plan_of(settings, device), a.device_memory_gib)
    if a.precisions:
        lines += ["", "| precision | all tasks at once MiB | fits |", "|---|---|---|"]
        for name, (dtype, quant) in PRECISION_SETTINGS.items():
            other = memory_plan_of(with_precision(settings, dtype, quant), device)
            ok = "-" if a.device_memory_gib is None else ("yes" if other.fits(int(a.device_memory_gib * 2**30))
                                                          else "no")
            lines.append(f"| {name} | {other.total / MIB:.0f} | {ok} |")
    print("\n".join(lines))
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
