"""Metric functions against every value in metric_vectors.json (the reference implementations' outputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlm3_ros.contract import answers
from vlm3_ros.eval import metrics as M

V = json.loads((Path(__file__).resolve().parents[2] / "data" / "metric_vectors.json").read_text())
REL = 1e-9


def test_dense_depth_formulas_per_image_and_pooled() -> None:
    d = V["depth"]
    gt, pr = np.array(d["inputs"]["gt"]), np.array(d["inputs"]["pred"])
    mask = np.array(d["common_mask"]["mask"])
    f = d["formula_comparison_on_common_mask"]
    names = {"silog": "silog_zoedepth"}
    for i in range(len(gt)):
        e = M.depth_errors(pr[i][mask[i]], gt[i][mask[i]])
        for k, v in f["zoedepth_compute_errors"]["per_image"][i].items():
            assert e[names.get(k, k)] == pytest.approx(v, rel=REL), k
        assert e["silog_da2"] == pytest.approx(f["depth_anything_v2_eval_depth"]["per_image"][i]["silog"], rel=REL)
        uni = f["unidepth_DICT_METRICS"]["per_image"][i]
        assert e["silog_unidepth"] == pytest.approx(uni["silog"], rel=REL)
        assert e["a1"] == pytest.approx(uni["d1"], rel=REL)
    pooled = M.depth_errors(pr[mask], gt[mask])
    for k, v in f["zoedepth_compute_errors"]["pooled_all_valid_pixels"].items():
        assert pooled[names.get(k, k)] == pytest.approx(v, rel=REL), k
    assert pooled["silog_unidepth"] == pytest.approx(f["unidepth_DICT_METRICS"]["pooled_all_valid_pixels"]["silog"],
                                                     rel=REL)


def test_zoedepth_protocol_mean_over_images() -> None:
    d = V["depth"]
    proto = d["protocols"]["zoedepth"]
    gt, pr = np.array(d["inputs"]["gt"]), np.array(d["inputs"]["pred"])
    lo, hi = proto["min_depth_eval"], proto["max_depth_eval"]
    per = []
    for i in range(len(gt)):
        p = np.clip(pr[i], lo, hi)
        valid = (gt[i] > lo) & (gt[i] < hi)
        per.append(M.depth_errors(p[valid], gt[i][valid]))
    for k, v in proto["mean_over_images"].items():
        key = "silog_zoedepth" if k == "silog" else k
        assert np.mean([e[key] for e in per]) == pytest.approx(v, rel=REL), k


def test_sparse_point_delta1_both_policies() -> None:
    pts = V["depthlm_points"]
    s = M.point_depth_scores([answers.parse_depth(x["text"]).value for x in pts["samples"]],
                             [x["gt"] for x in pts["samples"]])
    assert s.delta1_depthlm == pytest.approx(pts["depthlm_delta1_all_samples"], rel=REL)
    assert s.delta1_vlm3 == pytest.approx(pts["vlm3_notebook_delta1_valid_only"], rel=REL)
    assert s.n_valid == pts["vlm3_notebook_n_valid"]
    assert s.parse_failures == pts["vlm3_notebook_parse_failures"]
    assert s.non_positive == 2


def test_pose_errors_and_auc() -> None:
    p = V["pose"]
    mine = []
    for pair in p["pairs"]:
        e = M.pose_pair_errors(np.array(pair["R_gt"]), np.array(pair["t_gt"]), np.array(pair["R_pred"]),
                               np.array(pair["t_pred"]))
        # the reference quaternion form has a 3.6e-6 deg floor from its epsilon
        assert e["rot_err_deg"] == pytest.approx(pair["rot_err_deg_trace"], abs=1e-5)
        assert e["trans_err_deg"] == pytest.approx(pair["trans_err_deg_folded"], abs=3e-3)
        mine.append(e["max_err_deg"])
    errs = [pair["max_err_deg"] for pair in p["pairs"]]
    # Our exact formulas agree with the reference's epsilon-guarded ones to its ~3e-3 deg floor.
    assert np.max(np.abs(np.array(mine) - np.array(errs))) < 3e-3
    for t in (3, 5, 15, 30):
        assert M.auc_hist(errs, t) == pytest.approx(p["aggregate"][f"auc_hist@{t}"], rel=REL)
    for t in (5, 10, 20, 30):
        assert M.auc_trapz(errs, t) == pytest.approx(p["aggregate"][f"auc_trapz@{t}"], rel=REL)
    b = p["bin_edge_case"]
    for t in (3, 5, 15, 30):
        assert M.auc_hist(b["max_errors"], t) == pytest.approx(b[f"auc_hist@{t}"], rel=REL)
    for t in (5, 15, 30):
        assert M.auc_trapz(b["max_errors"], t) == pytest.approx(b[f"auc_trapz@{t}"], rel=REL)
    rot = [M.pose_pair_errors(np.array(x["R_gt"]), np.array(x["t_gt"]), np.array(x["R_pred"]),
                              np.array(x["t_pred"]))["rot_err_deg"] for x in p["pairs"]]
    tr = [x["trans_err_deg_folded"] for x in p["pairs"]]
    s = M.pose_scores(errs, rot, tr)
    for k in ("RRA@15", "RRA@30", "RTA@15", "RTA@30"):
        assert s[k] == pytest.approx(p["aggregate"][k], rel=REL)
    assert s["auc@30"] == pytest.approx(100 * p["aggregate"]["auc_hist@30"], rel=REL)


def test_correspondence_epe_pck() -> None:
    c = V["correspondence"]
    pooled_gt, pooled_pr = [], []
    per = []
    for pair in c["pairs"]:
        r = M.epe_pck(np.array(pair["gt_px"]), np.array(pair["pred_px"]), np.array(pair["valid"]))
        assert r["epe"] == pytest.approx(pair["epe_px"], rel=REL)
        for k in (1, 3, 5):
            assert r[f"pck@{k}"] == pytest.approx(pair[f"pck@{k}"], rel=REL)
        per.append(r)
        v = np.array(pair["valid"], bool)
        pooled_gt.append(np.array(pair["gt_px"])[v])
        pooled_pr.append(np.array(pair["pred_px"])[v])
    agg = c["aggregate"]
    assert np.mean([r["epe"] for r in per]) == pytest.approx(agg["epe_mean_of_pairs"], rel=REL)
    pooled = M.epe_pck(np.concatenate(pooled_gt), np.concatenate(pooled_pr))
    assert pooled["epe"] == pytest.approx(agg["epe_pooled"], rel=REL)
    for k in (1, 3, 5):
        assert pooled[f"pck@{k}"] == pytest.approx(agg[f"pck@{k}_pooled"], rel=REL)
        assert np.mean([r[f"pck@{k}"] for r in per]) == pytest.approx(agg[f"pck@{k}_mean_of_pairs"], rel=REL)


def test_vlm3_norm1000_correspondence_scoring() -> None:
    v = V["correspondence"]["vlm3_norm1000"]
    # The reference scores every parsed pair, out-of-range ones included.
    parsed = [answers.parse_point(t, -1e9, 1e9).value for t in v["pred_text"]]
    ok = [i for i, p in enumerate(parsed) if p is not None]
    assert len(ok) == v["n_parsed"] and len(parsed) - len(ok) == v["n_failed"]
    assert [list(parsed[i]) for i in ok] == [p for p in v["parsed"] if p is not None]
    r = M.epe_pck(np.array(v["gt_norm1000"])[ok], np.array([parsed[i] for i in ok]))
    # gt stored rounded to 1e-6 (the file's note)
    assert r["epe"] == pytest.approx(v["epe_norm1000_mean"], abs=1e-6)
    assert r["epe_median"] == pytest.approx(v["epe_norm1000_median_numpy"], abs=1e-6)


def test_spatialrgpt_scoring() -> None:
    sp = V["spatialrgpt"]
    for item in sp["quantitative_and_direction_items"]:
        if item["category"] == "direction":
            assert int(M.clock_error(item["gt_clock"], item["pred_clock"]) <= 1) == item["success"]
        else:
            assert int(M.quantitative_success(item["gt_m"], item["pred_m"])) == item["success"]
    res = M.spatialrgpt_results(sp["quantitative_and_direction_items"], sp["qualitative_items"])
    for k, v in sp["results"].items():
        assert res[k] == pytest.approx(v, rel=REL), k


def test_latency_percentiles() -> None:
    r = M.latency_percentiles([0.1, 0.2, 0.3, 0.4])
    assert r["p50_ms"] == pytest.approx(250.0) and r["max_ms"] == pytest.approx(400.0) and r["n"] == 4
