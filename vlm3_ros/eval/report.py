"""The evaluation report: report.json (configuration, versions, every metric), report.md (the
table a person reads) and PNG plots that say what they show."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.eval.metrics import QUANT_NAMES


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "transformers", "rosbags", "cv2"):
        try:
            m = __import__(mod)
        except Exception:
            out[mod] = "missing"
            continue
        try:  # rosbags has no __version__: its distribution's
            out[mod] = getattr(m, "__version__", None) or importlib.metadata.version(mod)
        except importlib.metadata.PackageNotFoundError:
            out[mod] = "unknown"
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except Exception:
        out["git"] = "unknown"
    from vlm3_ros import __version__

    out["vlm3_ros"] = __version__
    return out


def backend_label(report: dict[str, Any]) -> str:
    """What answered, said plainly: a test double and an untrained checkpoint are named as such."""
    backend = str(report.get("config", {}).get("backend", "?"))
    params = report.get("parameters", {})
    if backend == "ground_truth":
        return "ground_truth (TEST DOUBLE: answers read from the recorded ground truth, not a model)"
    if backend.startswith("through-ros"):
        return f"{backend} (the node's own backend)"
    if backend == "transformers":
        paths = sorted({str(params.get(f"model.{t}_path", "")) for t in params.get("enabled_tasks", [])} - {""})
        untrained = []
        for path in paths:
            marker = Path(path) / "vlm3_ros_test_checkpoint.json"
            if marker.is_file() and not json.loads(marker.read_text()).get("trained", True):
                untrained.append(path)
        names = ", ".join(Path(x).name for x in paths)
        return f"transformers: {names}" + (" (UNTRAINED test checkpoint: its answers are noise)" if untrained else "")
    return backend


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    clean = {**report, "sequences": [{k: v for k, v in s.items() if k != "_raw"} for s in report["sequences"]]}
    (out / "report.json").write_text(json.dumps(clean, indent=2, default=float))
    lines = ["# vlm3_ros evaluation", "", f"backend: **{backend_label(report)}**", ""]
    lines += ["| sequence | depth delta1 (DepthLM) | delta1 (VLM3, valid only) | parse failures | AbsRel | "
              "pose AUC@5/15/30 | corr EPE px | PCK@3 | VO ATE m |", "|---|---|---|---|---|---|---|---|---|"]
    ceilings = []
    for s in report["sequences"]:
        d, p, c, t = s.get("depth"), s.get("pose"), s.get("corr"), s.get("trajectory")
        cells = [s["name"],
                 f"{d['delta1_depthlm']:.3f} (n={d['n']})" if d else "-",
                 f"{d['delta1_vlm3']:.3f} (n={d['n_valid']})" if d else "-",
                 f"{d['parse_failures']} + {d['non_positive']} non-positive" if d else "-",
                 f"{d['abs_rel']:.4f}" if d else "-",
                 f"{p['auc@5']:.1f} / {p['auc@15']:.1f} / {p['auc@30']:.1f} ({p['pairs']} pairs)" if p else "-",
                 f"{c['original_px']['epe']:.2f}" if c else "-",
                 f"{c['original_px']['pck@3']:.3f}" if c else "-",
                 f"{t['ate_rmse_m']:.4f}" if t else "-"]
        lines.append("| " + " | ".join(cells) + " |")
        cd, cc = (d or {}).get("ceiling"), (c or {}).get("ceiling")
        if cd or cc:
            cells = [f"{cd['delta1']:.3f} (n={cd['n']})" if cd else "-", f"{cd['abs_rel']:.4f}" if cd else "-",
                     f"{cc['epe']:.2f}" if cc else "-", f"{cc['pck@3']:.3f}" if cc else "-"]
            ceilings.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    if ceilings:
        lines += ["", "## Ceiling: the ideal model on the same questions", "",
                  "Ground truth read at the integer pixel each prompt names (docs/evaluation.md#the-ceiling): the "
                  "error here is the camera's and the contract's, not the model's.", "",
                  "| sequence | depth delta1 | AbsRel | corr EPE px | PCK@3 |", "|---|---|---|---|---|", *ceilings]
    objects = [(s["name"], s["object"]) for s in report["sequences"] if s.get("object")]
    if objects:
        lines += ["", "## Object questions (SpatialRGPT-Bench scoring, no LLM judge)", "",
                  "| source | questions | unparsed | quantitative acc % | qualitative acc % | choice acc % |",
                  "|---|---|---|---|---|---|"]
        for name, o in objects:
            def pct(key: str, o: dict = o) -> str:
                return f"{o[key]:.1f}" if key in o else "-"

            lines.append(f"| {name} | {o['n']} | {o['unparsed']} | {pct('Quan_overall_acc')} | "
                         f"{pct('Qual_overall_acc')} | {pct('Qual_choice_acc')} |")
        kinds = [k for k in QUANT_NAMES.values() if any(f"Quan_{k}_acc" in o for _, o in objects)]
        if kinds:   # the quantitative kinds one by one (a bag's region questions are all quantitative)
            lines += ["", "Quantitative answers within 0.75-1.25 x the truth, by kind (%):", "",
                      "| source | " + " | ".join(k.replace("_", " ") for k in kinds) + " |",
                      "|---|" + "---|" * len(kinds)]
            for name, o in objects:
                lines.append(f"| {name} | " + " | ".join(f"{o[f'Quan_{k}_acc']:.1f}" if f"Quan_{k}_acc" in o else "-"
                                                       for k in kinds) + " |")
    lines += ["", "## Latency (per service-equivalent call)", "", "| sequence | task | n | p50 ms | p90 ms | p99 ms |",
              "|---|---|---|---|---|---|"]
    for s in report["sequences"]:
        for task, lat in s["latency"].items():
            lines.append(f"| {s['name']} | {task} | {lat['n']} | {lat['p50_ms']:.1f} | {lat['p90_ms']:.1f} | "
                         f"{lat['p99_ms']:.1f} |")
    notes = [n for s in report["sequences"] for n in s["notes"]]
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    lines += ["", "Metric definitions: docs/evaluation.md. Configuration and versions: report.json."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    plots(report, out)


def plots(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    who = backend_label(report)

    preds = np.array([p if p is not None else np.nan for s in report["sequences"]
                      for p in s["_raw"].get("depth", {}).get("pred", [])], dtype=np.float64)
    gts = np.array([g for s in report["sequences"] for g in s["_raw"].get("depth", {}).get("gt", [])])
    if len(gts):
        ok = np.isfinite(preds) & (preds > 0)
        fig, ax = plt.subplots(1, 2, figsize=(10, 4.5))
        ax[0].scatter(gts[ok], preds[ok], s=8, alpha=0.6)
        lim = [0, max(gts.max(), np.nanmax(preds[ok]) if ok.any() else 1) * 1.05]
        ax[0].plot(lim, lim, "k--", lw=1, label="pred = gt")
        ax[0].plot(lim, [v * 1.25 for v in lim], "r:", lw=1, label="delta1 band")
        ax[0].plot(lim, [v / 1.25 for v in lim], "r:", lw=1)
        ax[0].set(xlabel="ground-truth depth [m]", ylabel="predicted depth [m]",
                  title=f"depth: {ok.sum()} parsed of {len(gts)}")
        ax[0].legend()
        rel = (preds[ok] - gts[ok]) / gts[ok]
        ax[1].hist(rel, bins=40)
        ax[1].set(xlabel="relative error (pred - gt) / gt", ylabel="points", title="depth error histogram")
        fig.suptitle(who, fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "depth_scatter.png", dpi=110)
        plt.close(fig)
    quant = [q for s in report["sequences"] for q in s["_raw"].get("object", {}).get("quant", [])]
    if quant:
        object_plot(quant, who, out)
    for s in report["sequences"]:
        t = s.get("trajectory")
        if not t:
            continue
        e, g = np.array(t["positions_est"]), np.array(t["positions_gt"])
        fig, ax = plt.subplots(figsize=(5.5, 5))
        # camera optical frame of the first image: x right, z forward -> top view
        ax.plot(g[:, 0], g[:, 2], "k-o", ms=4, label="ground truth")
        ax.plot(e[:, 0], e[:, 2], "r--x", ms=5, label=f"VO (ATE {t['ate_rmse_m'] * 100:.1f} cm)")
        ax.set(xlabel="x (right) [m]", ylabel="z (forward) [m]",
               title=f"{s['name']}: trajectory in the x-z plane\nof the first camera's optical frame (top view)")
        ax.axis("equal")
        ax.legend()
        fig.suptitle(who, fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"trajectory_{s['name']}.png", dpi=110)
        plt.close(fig)


def object_plot(quant: list[dict[str, Any]], who: str, out: Path) -> None:
    """object_scatter.png: each quantitative object answer against its truth, by kind, with
    SpatialRGPT-Bench's success band (0.75-1.25 x the truth); unparsed answers are counted."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    top = max([q["gt_m"] for q in quant] + [q["pred_m"] for q in quant if q["pred_m"] is not None]) * 1.05
    parsed = 0
    for cat, name in QUANT_NAMES.items():
        pts = [(q["gt_m"], q["pred_m"]) for q in quant if q["category"] == cat and q["pred_m"] is not None]
        if pts:
            g, p = np.array(pts).T
            ax.scatter(g, p, s=14, alpha=0.7, label=name.replace("_", " "))
            parsed += len(pts)
    ax.plot([0, top], [0, top], "k--", lw=1, label="answer = truth")
    ax.plot([0, top], [0, 1.25 * top], "r:", lw=1, label="success band (0.75-1.25 x truth)")
    ax.plot([0, top], [0, 0.75 * top], "r:", lw=1)
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="truth [m]", ylabel="answer [m]",
           title=f"object questions: {parsed} answers with a quantity, of {len(quant)} quantitative")
    ax.legend(fontsize=8)
    fig.suptitle(who, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "object_scatter.png", dpi=110)
    plt.close(fig)
