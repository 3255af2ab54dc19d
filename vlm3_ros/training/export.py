"""``export-sft``: a robot's recordings as VLM3 training samples.

The queries are the evaluation's (:mod:`vlm3_ros.eval.dataset`: the same sampled pixels, frame
pairs and occlusion-checked correspondences, the same ground truth, one copy), asked through the
node's own :class:`~vlm3_ros.tasks.pipeline.Pipeline` so the unified images and the prompt text are
byte for byte what the node sends a model. An :class:`AnswerKey` stands where the model would:
it records each question and answers it with the contract's answer string for the ground truth.
The pipeline then parses that answer back; a sample whose answer does not read back as its truth
(within the text's precision) is dropped and counted, so every exported answer parses.

Splits are by time, never by sample: frames up to a cut are ``train``, the rest ``val``; a frame
pair whose frames straddle the cut is dropped (its images would leak across the split).
Each unified image is written once per frame and unification (``images/<bag>/<task>_<stamp>.png``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm3_ros.contract import answers
from vlm3_ros.contract.question import Answer, Question
from vlm3_ros.eval.dataset import Dataset, EvalOptions, from_sequence, load_sequence
from vlm3_ros.geometry import coords
from vlm3_ros.readers.bag_contents import TopicRequest, resolve_topics
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings
from vlm3_ros.training.sft_samples import SPLITS, Sample, split_files, write_jsonl

LOG = logging.getLogger("vlm3_ros.export")

# How far a parsed-back answer may sit from its truth: the answer strings' last digit
DEPTH_TOL_M = 0.0051           # format_depth: 2 decimals
CORR_TOL_PX = 2.0              # [0, 1000] integers on a 1024-px image, mapped back to original pixels
OBJECT_TOL_M = 0.0051          # format_object_quantity: 2 decimals
EXPORT_TASKS = ("depth", "pose", "corr", "object")


@dataclass(frozen=True)
class ExportOptions:
    sampling: EvalOptions = field(default_factory=EvalOptions)
    val_fraction: float = 0.3       # the last part of each recording's time span is validation

    def validate(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        unknown = set(self.sampling.tasks) - set(EXPORT_TASKS)
        if unknown:
            raise ValueError(f"export-sft makes samples for {EXPORT_TASKS}, not {sorted(unknown)}")


class AnswerKey:
    """Stands where a model would (the Backend protocol): records every question the pipeline
    asks and answers it with ``label(question, index)``, set by the exporter per request."""

    name = "answer-key"

    def __init__(self) -> None:
        self.label: Callable[[Question, int], str] | None = None
        self.asked: list[tuple[Question, str]] = []

    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        assert self.label is not None, "set AnswerKey.label before asking"
        out = []
        for i, q in enumerate(questions):
            text = self.label(q, i)
            self.asked.append((q, text))
            out.append(Answer(text))
        return out

    def take(self) -> list[tuple[Question, str]]:
        asked, self.asked = self.asked, []
        return asked

    def close(self) -> None:
        pass


@dataclass
class ExportSummary:
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    dropped: dict[str, int] = field(default_factory=dict)   # reason -> count
    images: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, split: str, task: str, n: int) -> None:
        self.counts[split][task] = self.counts[split].get(task, 0) + n

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def table(self) -> str:
        tasks = sorted({t for c in self.counts.values() for t in c})
        lines = ["| split | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for s in SPLITS:
            lines.append(f"| {s} | " + " | ".join(str(self.counts[s].get(t, 0)) for t in tasks) + " |")
        return "\n".join(lines)


def split_of(stamp_ns: int, cut_ns: float) -> str:
    return "train" if stamp_ns <= cut_ns else "val"


def time_cut(stamps: list[int], val_fraction: float) -> float:
    """The last train stamp's upper bound: the first (1 - val_fraction) of the time span."""
    t0, t1 = min(stamps), max(stamps)
    return t0 + (1.0 - val_fraction) * (t1 - t0) if val_fraction > 0 else float("inf")


class Exporter:
    """Turns one recording's evaluation queries into samples, writing each unified image once."""

    def __init__(self, out_dir: Path, settings: PipelineSettings, opts: ExportOptions) -> None:
        self.out = out_dir
        self.settings = settings
        self.opts = opts
        self.key = AnswerKey()
        self.pipeline = Pipeline({t: self.key for t in EXPORT_TASKS}, settings)
        self.samples: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        self.summary = ExportSummary()
        self._written: dict[tuple[str, str, int], str] = {}

    # ------------------------------------------------------------------ images
    def _image(self, bag: str, task: str, stamp: int, image: np.ndarray) -> str:
        import cv2

        k = (bag, task, stamp)
        if k not in self._written:
            rel = f"images/{bag}/{task}_{stamp}.png"
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(self.out / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            self._written[k] = rel
            self.summary.images += 1
        return self._written[k]

    def _emit(self, bag: str, split: str, asked: list[tuple[Question, str]], truths: list[dict[str, Any]],
              keep: list[bool]) -> None:
        for (q, text), truth, ok in zip(asked, truths, keep, strict=True):
            c = q.context
            assert c is not None
            if not ok:
                self.summary.drop(f"{c.task}: answer does not read back as its truth")
                continue
            paths = tuple(self._image(bag, c.task, st, im) for st, im in zip(c.stamps, q.images, strict=True))
            self.samples[split].append(Sample(c.task, split, paths, q.text, text, bag, c.stamps, truth))
            self.summary.add(split, c.task, 1)

    # ------------------------------------------------------------------ tasks
    def depth(self, bag: str, split: str, q: Any) -> None:
        texts = [answers.format_depth(float(g)) for g in q.gt]
        self.key.label = lambda _q, i: texts[i]
        res = self.pipeline.depth(q.frame, q.pixels, self.settings.model_depth_type)
        asked = self.key.take()
        if len(asked) != len(q.gt):  # a sampled pixel the task refused (cannot happen inside the margin)
            self.summary.drop("depth: pixel refused by the task", len(q.gt))
            return
        keep = [bool(abs(d - g) <= DEPTH_TOL_M) for d, g in zip(res.depth, q.gt, strict=True)]
        truths = [{"pixel": [float(u), float(v)], "depth_m": float(g), "depth_type": self.settings.model_depth_type}
                  for (u, v), g in zip(q.pixels, q.gt, strict=True)]
        self._emit(bag, split, asked, truths, keep)

    def pose(self, bag: str, split: str, q: Any) -> None:
        self.key.label = lambda question, _i: answers.format_pose_answer(question.context.pose_question, q.T_a_b)
        res = self.pipeline.pose(q.frame_a, q.frame_b, q.metric)
        asked = self.key.take()
        keep = [res.ok and not res.reasons] * len(asked)
        truths = [{"question": qq.context.pose_question, "T_a_b": np.round(q.T_a_b, 9).tolist()} for qq, _ in asked]
        self._emit(bag, split, asked, truths, keep)

    def corr(self, bag: str, split: str, q: Any) -> None:
        def label(question: Question, i: int) -> str:
            view_b = question.context.views[1]
            n = coords.corr_to_norm(view_b.to_unified(q.pixels_b[i:i + 1]), view_b.width, view_b.height)[0]
            return answers.format_point(*n)

        self.key.label = label
        res = self.pipeline.corr(q.frame_a, q.frame_b, q.pixels_a)
        asked = self.key.take()
        if len(asked) != len(q.pixels_a):
            self.summary.drop("corr: pixel refused by the task", len(q.pixels_a))
            return
        err = np.linalg.norm(res.pixels_b - q.pixels_b, axis=1)
        keep = [bool(e <= CORR_TOL_PX) for e in err]
        truths = [{"pixel_a": [float(a[0]), float(a[1])], "pixel_b": [float(b[0]), float(b[1])]}
                  for a, b in zip(q.pixels_a, q.pixels_b, strict=True)]
        self._emit(bag, split, asked, truths, keep)

    def object(self, bag: str, split: str, q: Any) -> None:
        """A region question, answered as the ground-truth double words it with the box text the
        rendered prompt holds (regions named in the question's order: ``Region [0]`` first)."""
        if q.truth_m is None:   # a label file's question: no measured quantity to answer with
            self.summary.drop("object: no measured truth")
            return
        value = float(q.truth_m)
        pattern = self.settings.prompts.box_pattern()   # the box text as the node's prompts write it

        def label(question: Question, _i: int) -> str:
            return answers.format_object_quantity(q.category, value, *pattern.findall(question.text)[:2])

        self.key.label = label
        res = self.pipeline.object(q.frame, q.boxes, q.question)
        asked = self.key.take()
        got = res.answer.quantity_m if res.answer is not None else None
        keep = [got is not None and abs(got - value) <= OBJECT_TOL_M] * len(asked)
        truths = [{"kind": q.category, "value_m": value, "boxes": np.asarray(q.boxes, dtype=float).tolist(),
                   "question": q.question}] * len(asked)
        self._emit(bag, split, asked, truths, keep)

    def add_dataset(self, bag: str, ds: Dataset, cut_ns: float, progress: Any = None) -> None:
        """Every query of ``ds`` whose frames lie on one side of the cut, into that split."""
        for q in ds.depth:
            self.depth(bag, split_of(q.frame.stamp_ns, cut_ns), q)
            if progress is not None:
                progress.update(1)
        for kind, queries in (("pose", ds.pose), ("corr", ds.corr)):
            for pq in queries:
                sa, sb = split_of(pq.frame_a.stamp_ns, cut_ns), split_of(pq.frame_b.stamp_ns, cut_ns)
                if sa != sb:
                    self.summary.drop(f"{kind}: frame pair straddles the train/val cut")
                else:
                    getattr(self, kind)(bag, sa, pq)
                if progress is not None:
                    progress.update(1)
        for oq in ds.object:
            self.object(bag, split_of(oq.frame.stamp_ns, cut_ns), oq)
            if progress is not None:
                progress.update(1)

    def write(self) -> dict[str, Path]:
        files = split_files(self.out)
        for s, path in files.items():
            write_jsonl(path, self.samples[s])
        return files


def export_bags(bags: list[Path], out_dir: Path, settings: PipelineSettings, opts: ExportOptions,
                request: TopicRequest | None = None, show_progress: bool = True) -> ExportSummary:
    """Export ``bags`` to ``out_dir`` (train.jsonl, val.jsonl, images/, summary.json)."""
    import json

    from tqdm import tqdm

    opts.validate()
    # the ground truth in the depth type the checkpoint answers in (model.depth_type)
    sampling = EvalOptions(**{**opts.sampling.__dict__, "depth_type": settings.model_depth_type})
    ex = Exporter(out_dir, settings, opts)
    for bag in bags:
        topics = resolve_topics(bag, request or TopicRequest())
        seq = load_sequence(bag, topics, sampling)
        ds = from_sequence(seq, sampling)
        ex.summary.notes += [f"{bag.name}: {n}" for n in ds.notes]
        cut = time_cut([f.stamp_ns for f in seq.frames], opts.val_fraction)
        n_train = sum(f.stamp_ns <= cut for f in seq.frames)
        LOG.info("%s: %d frames (%d train, %d val by time)", bag.name, len(seq.frames), n_train,
                 len(seq.frames) - n_train)
        total = len(ds.depth) + len(ds.pose) + len(ds.corr) + len(ds.object)
        with tqdm(total=total, desc=f"export {bag.name}", unit="query", disable=not show_progress) as bar:
            ex.add_dataset(_bag_name(bag), ds, cut, bar)
    files = ex.write()
    s = ex.summary
    (out_dir / "summary.json").write_text(json.dumps({
        "counts": s.counts, "dropped": s.dropped, "images": s.images, "notes": s.notes,
        "files": {k: str(v.name) for k, v in files.items()}, "bags": [str(b) for b in bags],
        "sampling": {**sampling.__dict__, "tasks": list(sampling.tasks), "strides": list(sampling.strides)},
        "val_fraction": opts.val_fraction, "model_depth_type": settings.model_depth_type,
    }, indent=2))
    return s


def _bag_name(bag: Path) -> str:
    return bag.stem if bag.is_file() else bag.name
