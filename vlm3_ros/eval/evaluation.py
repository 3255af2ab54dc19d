"""One evaluation run: load each bag or label file into its queries, ask them through a runner
built from the node's own configuration, score, and assemble the report."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm3_ros.eval.ceiling import WARN_DELTA1, ceiling, truth_backends
from vlm3_ros.eval.dataset import Dataset, EvalOptions, from_labels, from_sequence, load_sequence
from vlm3_ros.eval.report import versions
from vlm3_ros.eval.runners import InProcessRunner, Runner
from vlm3_ros.eval.scoring import evaluate, pooled
from vlm3_ros.params.config import NodeConfig, build_config
from vlm3_ros.params.mapping import odometry_policy, open_backends, pipeline_settings
from vlm3_ros.readers.bag import BagError, BagTopics
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.readers.labels import (
    is_spatialrgpt_bench,
    read_depthlm_jsonl,
    read_spatialrgpt_bench,
    read_vlm3_labels,
)
from vlm3_ros.readers.trajectory_file import read_trajectory
from vlm3_ros.tasks.pipeline import Pipeline

LOG = logging.getLogger("vlm3_ros.eval")

@dataclass(frozen=True)
class Source:
    """One evaluated input: a bag with the topics it was read with, or a label file."""

    bag: Path | None = None
    topics: BagTopics | None = None
    trajectory_file: Path | None = None     # ground-truth poses from a file, not the bag


def config_for_source(cfg: NodeConfig, src: Source) -> NodeConfig:
    """The ground-truth TEST DOUBLE answers from the bag being evaluated, read with the same
    topics and frames; other backends as set."""
    if cfg["backend"] == "ground_truth" and src.bag is not None and src.topics is not None:
        t = src.topics
        return build_config({**cfg.values, "ground_truth.bag": str(src.bag), "ground_truth.depth_topic": t.depth,
                             "ground_truth.world_frame": t.world_frame, "ground_truth.camera_frame": t.camera_frame,
                             "ground_truth.pose_topic": t.pose})
    return cfg


def in_process_runner(cfg: NodeConfig, src: Source, ds: Dataset | None = None) -> InProcessRunner:
    """The pipeline exactly as the node builds it from the same parameters."""
    c = config_for_source(cfg, src)
    if c["backend"] == "ground_truth" and src.trajectory_file is not None and ds is not None:
        # the poses live in a file the bag does not name: the double answers from the loaded recording
        return InProcessRunner(Pipeline(truth_backends(ds, c["enabled_tasks"]), pipeline_settings(c)))
    return InProcessRunner(Pipeline(open_backends(c), pipeline_settings(c)))


def load_datasets(bags: list[Path], labels: list[Path], request: TopicRequest, opts: EvalOptions,
                  max_points: int, trajectory_file: Path | None = None,
                  trajectory_format: str = "") -> list[tuple[Source, Dataset]]:
    out: list[tuple[Source, Dataset]] = []
    for bag in bags:
        topics = resolve_topics(bag, request)
        traj = (lambda stamps: read_trajectory(trajectory_file, trajectory_format, stamps)) if trajectory_file else None
        seq = load_sequence(bag, topics, opts, traj)
        LOG.info("%s: %d frames, %d with depth, poses %s", bag.name, len(seq.frames), len(seq.depth),
                 "yes" if seq.trajectory else "no")
        out.append((Source(bag, topics, trajectory_file), from_sequence(seq, opts)))
    for lf in labels:
        if is_spatialrgpt_bench(lf):
            items: list = read_spatialrgpt_bench(lf, max_items=opts.max_frames)
        elif lf.suffix == ".jsonl":
            items = read_depthlm_jsonl(lf, opts.max_frames)
        else:
            items = [read_vlm3_labels(lf)]
        out.append((Source(), from_labels(items, lf.name, max_points)))
    return out


RunnerFactory = Callable[[Source, Dataset], Runner]


def run_evaluation(cfg: NodeConfig, bags: list[Path], labels: list[Path], request: TopicRequest, opts: EvalOptions,
                   make_runner: RunnerFactory | None = None, show_progress: bool = True,
                   trajectory_file: Path | None = None, trajectory_format: str = "") -> dict[str, Any]:
    """The report (without the caller's own configuration section)."""
    from tqdm import tqdm

    settings = pipeline_settings(cfg)
    factory: RunnerFactory = make_runner or (lambda src, ds: in_process_runner(cfg, src, ds))
    results = []
    for source, ds in load_datasets(bags, labels, request, opts, settings.max_points, trajectory_file,
                                    trajectory_format):
        if not ds.calls():
            # every task asked for was skipped: a report of dashes would hide what to fix
            raise BagError(f"{ds.name}: nothing to score for --tasks {','.join(opts.tasks)}: "
                           + "; ".join(ds.notes or ["no frames"]))
        runner = factory(source, ds)
        with tqdm(total=ds.calls(), desc=ds.name, disable=not show_progress, unit="call") as bar:
            try:
                res = evaluate(ds, runner, opts.depth_type, settings.unify["corr"], bar, odometry_policy(cfg))
            finally:
                runner.close()
        if "pose" in res and source.bag is not None:
            res["pose"].update(strides=list(opts.strides), min_baseline_m=opts.min_baseline_m)
        add_ceiling(res, ceiling(ds, settings, opts.depth_type))
        if source.topics is not None:
            res["topics"] = dataclasses.asdict(source.topics)
        results.append(res)
    return {"options": dataclasses.asdict(opts), "parameters": dict(cfg.values), "versions": versions(),
            "sequences": results, "pooled": pooled(results)}


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
