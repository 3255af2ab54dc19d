"""One evaluation run: load each bag or label file into its queries, ask them through a runner
built from the node's own settings, score, and assemble the report."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm3_ros.contract.question import Backend
from vlm3_ros.eval.ceiling import add_ceiling, ceiling
from vlm3_ros.eval.dataset import Dataset, EvalOptions, from_labels, from_sequence, load_sequence
from vlm3_ros.eval.report import versions
from vlm3_ros.eval.runners import InProcessRunner, Runner, truth_backends
from vlm3_ros.eval.scoring import evaluate, pooled
from vlm3_ros.inference.backend_registry import open_backends
from vlm3_ros.inference.ground_truth.backend import GroundTruthConfig
from vlm3_ros.params.node_settings import NodeSettings
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


def in_process_runner(settings: NodeSettings, src: Source, ds: Dataset) -> InProcessRunner:
    """The pipeline exactly as the node builds it from the same settings. The ground-truth TEST
    DOUBLE answers from the recording being evaluated (where the poses live in a file the bag
    does not name: from the loaded recording)."""
    configs = backend_configs(settings, src)
    backends: dict[str, Backend]
    if settings.backend == "ground_truth" and src.trajectory_file is not None:
        backends = dict(truth_backends(ds, settings.tasks))
    else:
        backends = open_backends(settings.backend, configs)
    pipeline = Pipeline(backends, settings.pipeline)
    return InProcessRunner(pipeline)


def backend_configs(settings: NodeSettings, src: Source) -> Mapping[str, Hashable]:
    """Each task's backend configuration as set; the ground-truth TEST DOUBLE's reads the bag
    being evaluated, with the same topics and frames."""
    if settings.backend != "ground_truth" or src.bag is None or src.topics is None:
        return settings.backends
    t = src.topics
    truth = GroundTruthConfig(bag=str(src.bag), depth_topic=t.depth, world_frame=t.world_frame,
                              camera_frame=t.camera_frame, pose_topic=t.pose)
    return {task: truth for task in settings.tasks}


def load_datasets(bags: list[Path], labels: list[Path], request: TopicRequest, opts: EvalOptions,
                  trajectory_file: Path | None = None, trajectory_format: str = "") -> list[tuple[Source, Dataset]]:
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
        out.append((Source(), from_labels(items, lf.name, opts.points_per_frame)))
    return out


RunnerFactory = Callable[[Source, Dataset], Runner]


def run_evaluation(settings: NodeSettings, bags: list[Path], labels: list[Path], request: TopicRequest,
                   opts: EvalOptions, make_runner: RunnerFactory | None = None, show_progress: bool = True,
                   trajectory_file: Path | None = None, trajectory_format: str = "") -> dict[str, Any]:
    """The report (without the caller's own configuration section)."""
    from tqdm import tqdm

    factory: RunnerFactory = make_runner or (lambda src, ds: in_process_runner(settings, src, ds))
    pipeline = settings.pipeline
    results = []
    for source, ds in load_datasets(bags, labels, request, opts, trajectory_file, trajectory_format):
        if not ds.calls():
            # every task asked for was skipped: a report of dashes would hide what to fix
            raise BagError(f"{ds.name}: nothing to score for --tasks {','.join(opts.tasks)}: "
                           + "; ".join(ds.notes or ["no frames"]))
        runner = factory(source, ds)
        with tqdm(total=ds.calls(), desc=ds.name, disable=not show_progress, unit="call") as bar:
            try:
                res = evaluate(ds, runner, opts.depth_type, pipeline.unify["corr"], bar, settings.serving.vo.policy)
            finally:
                runner.close()
        if "pose" in res and source.bag is not None:
            res["pose"].update(strides=list(opts.strides), min_baseline_m=opts.min_baseline_m)
        add_ceiling(res, ceiling(ds, pipeline, opts.depth_type))
        if source.topics is not None:
            res["topics"] = dataclasses.asdict(source.topics)
        results.append(res)
    return {"options": dataclasses.asdict(opts), "parameters": dict(settings.parameters), "versions": versions(),
            "sequences": results, "pooled": pooled(results)}

