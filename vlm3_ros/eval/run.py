"""One evaluation run: load each bag or label file into its queries, ask them through a runner
built from the node's own configuration, score, and assemble the report."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vlm3_ros.eval.dataset import Dataset, EvalOptions, from_labels, from_sequence, load_sequence
from vlm3_ros.eval.report import versions
from vlm3_ros.eval.runner import InProcessRunner, Runner
from vlm3_ros.eval.scoring import evaluate, pooled
from vlm3_ros.params.config import NodeConfig, build_config
from vlm3_ros.params.mapping import odometry_policy, open_backends, pipeline_settings
from vlm3_ros.readers.bag import BagTopics
from vlm3_ros.readers.labels import read_depthlm_jsonl, read_vlm3_labels
from vlm3_ros.tasks.pipeline import Pipeline

LOG = logging.getLogger("vlm3_ros.eval")

RunnerFactory = Callable[[Path | None, Dataset], Runner]


def config_for_source(cfg: NodeConfig, bag: Path | None) -> NodeConfig:
    """The ground-truth TEST DOUBLE answers from the bag being evaluated; other backends as set."""
    if cfg["backend"] == "ground_truth" and bag is not None:
        return build_config({**cfg.values, "ground_truth.bag": str(bag)})
    return cfg


def in_process_runner(cfg: NodeConfig, bag: Path | None) -> InProcessRunner:
    """The pipeline exactly as the node builds it from the same parameters."""
    c = config_for_source(cfg, bag)
    return InProcessRunner(Pipeline(open_backends(c), pipeline_settings(c)))


def load_datasets(bags: list[Path], labels: list[Path], topics: BagTopics, opts: EvalOptions,
                  max_points: int) -> list[tuple[Path | None, Dataset]]:
    out: list[tuple[Path | None, Dataset]] = []
    for bag in bags:
        seq = load_sequence(bag, topics, opts)
        LOG.info("%s: %d frames, %d with depth, poses %s", bag.name, len(seq.frames), len(seq.depth),
                 "yes" if seq.trajectory else "no")
        out.append((bag, from_sequence(seq, opts)))
    for lf in labels:
        items = read_depthlm_jsonl(lf, opts.max_frames) if lf.suffix == ".jsonl" else [read_vlm3_labels(lf)]
        out.append((None, from_labels(items, lf.name, max_points)))
    return out


def run_evaluation(cfg: NodeConfig, bags: list[Path], labels: list[Path], topics: BagTopics, opts: EvalOptions,
                   make_runner: RunnerFactory | None = None, show_progress: bool = True) -> dict[str, Any]:
    """The report (without the caller's own configuration section)."""
    from tqdm import tqdm

    settings = pipeline_settings(cfg)
    factory: RunnerFactory = make_runner or (lambda bag, ds: in_process_runner(cfg, bag))
    results = []
    for source, ds in load_datasets(bags, labels, topics, opts, settings.max_points):
        runner = factory(source, ds)
        with tqdm(total=ds.calls(), desc=ds.name, disable=not show_progress, unit="call") as bar:
            try:
                res = evaluate(ds, runner, opts.depth_type, settings.unify["corr"], bar, odometry_policy(cfg))
            finally:
                runner.close()
        if "pose" in res and source is not None:
            res["pose"].update(strides=list(opts.strides), min_baseline_m=opts.min_baseline_m)
        results.append(res)
    return {"options": asdict(opts), "parameters": dict(cfg.values), "versions": versions(),
            "sequences": results, "pooled": pooled(results)}
