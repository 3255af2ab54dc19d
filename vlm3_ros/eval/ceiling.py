"""The ceiling of a recording: what an ideal model scores under the contract's quantisation.

The same pipeline (unification, prompt integers, answer text) answered by the ground-truth double
from the recording's own depth and poses: the ground truth read at the unified integer pixel the
prompt names. Whatever error remains is the camera's and the contract's, not the model's (e.g. at
depth edges of a long-focal camera, whose unified image is smaller than the original). Reports show
it beside every depth and correspondence metric.
"""

from __future__ import annotations

from typing import Any

from vlm3_ros.eval.dataset import Dataset
from vlm3_ros.eval.runners import InProcessRunner, truth_backends
from vlm3_ros.eval.scoring import evaluate
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings

# Below this the camera and the contract alone cost more than 1 % of delta1: the report warns.
WARN_DELTA1 = 0.99


def ceiling(ds: Dataset, settings: PipelineSettings, depth_type: str) -> dict[str, Any]:
    """Depth and correspondence metrics of the ideal model on ``ds``'s own queries, scored as
    the model's are."""
    if not ds.depth_images:
        return {}
    ideal = InProcessRunner(Pipeline(truth_backends(ds, ("depth", "corr")), settings), "ceiling")
    res = evaluate(Dataset(ds.name, ds.frames, depth=ds.depth, corr=ds.corr), ideal, depth_type, settings.unify["corr"])
    out: dict[str, Any] = {}
    if "depth" in res:
        d = res["depth"]
        out["depth"] = {"delta1": d["delta1_depthlm"], "abs_rel": d["abs_rel"], "n": d["n"]}
    if "corr" in res:
        c = res["corr"]["original_px"]
        out["corr"] = {"epe": c["epe"], "pck@3": c["pck@3"]}
    return out


def add_ceiling(res: dict[str, Any], ceil: dict[str, Any]) -> None:
    """Put the ideal model's figures beside the measured ones; warn when the camera and the
    contract alone cost more than 1 % of depth delta1."""
    for task in ("depth", "corr"):
        if task in res and task in ceil:
            res[task]["ceiling"] = ceil[task]
    d = ceil.get("depth")
    if d is not None and d["delta1"] < WARN_DELTA1:
        res["notes"].append(f"the ideal model scores depth delta1 {d['delta1']:.3f} on this camera (ceiling below "
                            f"{WARN_DELTA1}): the contract's unification and prompt integers cost this much here, "
                            "whatever the model (docs/evaluation.md)")
