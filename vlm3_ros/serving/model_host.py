"""The models and what runs on them: the backends opened at configure, the task pipeline on them
and the one inference worker that runs their jobs; freed at deactivate, never under a job that
still runs. ``active`` says whether the node takes work."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from vlm3_ros.contract.question import Backend, BackendError
from vlm3_ros.inference.backend_registry import close_backends
from vlm3_ros.serving.log import Log
from vlm3_ros.serving.settings import ServingSettings
from vlm3_ros.serving.status import NotReady
from vlm3_ros.serving.worker import InferenceWorker
from vlm3_ros.tasks.pipeline import Pipeline, PipelineSettings

NOT_ACTIVE = "node is not active (configuring, loading models, or deactivated)"


class ModelHost:
    """Owns the backends, the pipeline on them and the worker; ``load`` opens them with
    ``open_backends`` and the settings, ``release`` frees them, ``serving`` hands them to a job."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.settings = ServingSettings()
        self.pipeline_settings = PipelineSettings()
        self.open_backends: Callable[[], dict[str, Backend]] | None = None
        self.backends: dict[str, Backend] = {}
        self.pipeline: Pipeline | None = None
        self.worker: InferenceWorker | None = None
        self.active = False
        self.config_error = ""                      # why the last configure failed ('' = it did not)
        self._lock = threading.RLock()

    def fail(self, reason: str) -> None:
        """Record why configure failed (reported as ERROR in diagnostics) and log it."""
        self.config_error = reason
        self.log.error(reason)

    def load(self) -> bool:
        """Open the backends and start the pipeline and the worker on them; False (with the reason
        recorded) when the backends cannot be opened."""
        assert self.open_backends is not None
        t0 = time.monotonic()
        try:
            backends = self.open_backends()
        except (BackendError, ValueError, OSError) as e:
            self.fail(f"cannot load the models: {e}")
            return False
        except Exception as e:  # a broken install raises anything; report it, do not crash
            self.fail(f"cannot load the models ({type(e).__name__}): {e}\n{traceback.format_exc()}")
            return False
        self.config_error = ""
        with self._lock:
            self.backends = backends
            self.pipeline = Pipeline(backends, self.pipeline_settings)
            self.worker = InferenceWorker(max_queue=self.settings.queue_size)
        names = sorted({b.name for b in backends.values()})
        self.log.info(f"models ready in {time.monotonic() - t0:.1f}s: {names}")
        if self.settings.backend == "ground_truth":
            self.log.warning("backend ground_truth is a TEST DOUBLE answering from recorded ground truth")
        return True

    def use_pipeline_settings(self, pipeline_settings: PipelineSettings) -> None:
        """Settings the running pipeline takes at once (its next request reads them)."""
        self.pipeline_settings = pipeline_settings
        pipeline = self.pipeline
        if pipeline is not None:
            pipeline.settings = pipeline_settings

    def serving(self) -> tuple[Pipeline, InferenceWorker]:
        """The pipeline and the worker to run a job on; NotReady unless active with models loaded."""
        with self._lock:
            pipeline, worker = self.pipeline, self.worker
        if not self.active or pipeline is None or worker is None:
            raise NotReady(NOT_ACTIVE)
        return pipeline, worker

    def release(self) -> None:
        """Stop the worker (queued jobs answered BUSY, the running one stopped at its next batch
        boundary), then free the models: never under a job that still runs."""
        with self._lock:
            worker, backends = self.worker, self.backends
            self.worker, self.pipeline, self.backends = None, None, {}
        if worker is not None and not worker.stop(reason="the node is being deactivated"):
            self.log.error("the inference job did not stop within 60 s; its models stay loaded until it ends")
            return
        close_backends(backends)
