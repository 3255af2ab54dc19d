"""Status codes of service replies and how errors and task outcomes map to them.

``StatusCode`` mirrors vlm3_ros/msg/Status (a test checks the values match); the ROS layer copies
the code into the message. The first matching exception class wins (subclasses before bases).
"""

from __future__ import annotations

from enum import IntEnum

from vlm3_ros.contract.prompts import PromptError
from vlm3_ros.contract.question import BackendError
from vlm3_ros.geometry.camera import CameraModelError
from vlm3_ros.geometry.frame import FrameError
from vlm3_ros.geometry.unify import UnifyError
from vlm3_ros.readers.image_codec import ImageDecodeError
from vlm3_ros.runtime.cancel import Cancelled
from vlm3_ros.serving.worker import BackendBusy, DeadlineExceeded
from vlm3_ros.tasks.common import Outcome, RequestError


class StatusCode(IntEnum):
    OK = 0
    INVALID_REQUEST = 1
    FRAME_NOT_FOUND = 2
    BUSY = 3
    MODEL_NOT_READY = 4
    TASK_DISABLED = 5
    PARSE_FAILURE = 6
    BACKEND_ERROR = 7
    TIMEOUT = 8
    PARTIAL = 9


class FrameNotFound(LookupError):
    """No frame matches the selector (none yet, stamp not cached, no keyframe)."""


class NotReady(RuntimeError):
    """The node is not active or its models are not loaded."""


class TaskDisabled(RuntimeError):
    """The task is not in enabled_tasks."""


ERROR_STATUS: tuple[tuple[type[BaseException], StatusCode], ...] = (
    (NotReady, StatusCode.MODEL_NOT_READY),
    (TaskDisabled, StatusCode.TASK_DISABLED),
    (FrameNotFound, StatusCode.FRAME_NOT_FOUND),
    (RequestError, StatusCode.INVALID_REQUEST),
    (PromptError, StatusCode.INVALID_REQUEST),
    (FrameError, StatusCode.INVALID_REQUEST),
    (CameraModelError, StatusCode.INVALID_REQUEST),
    (UnifyError, StatusCode.INVALID_REQUEST),
    (ImageDecodeError, StatusCode.INVALID_REQUEST),
    (BackendBusy, StatusCode.BUSY),
    (DeadlineExceeded, StatusCode.TIMEOUT),
    (Cancelled, StatusCode.TIMEOUT),
    (BackendError, StatusCode.BACKEND_ERROR),
)

OUTCOME_STATUS: dict[Outcome, StatusCode] = {
    Outcome.OK: StatusCode.OK,
    Outcome.PARTIAL: StatusCode.PARTIAL,
    Outcome.PARSE_FAILURE: StatusCode.PARSE_FAILURE,
    Outcome.INVALID_REQUEST: StatusCode.INVALID_REQUEST,
    Outcome.NOT_RUN: StatusCode.BACKEND_ERROR,
}


def status_of(error: BaseException) -> StatusCode | None:
    """The status of a known error class, None for an unexpected one (an internal error)."""
    return next((code for cls, code in ERROR_STATUS if isinstance(error, cls)), None)
