"""A reply's status says what happened: PARTIAL only when some point was answered; with none, the
status of the dominant failure (the most points; a tie goes to what the caller can fix)."""

from __future__ import annotations

import numpy as np
import pytest

from vlm3_ros.serving.status import OUTCOME_STATUS, StatusCode
from vlm3_ros.tasks.common import PointCode, point_outcome

OK, OUT, PARSE, BAD, NOT_RUN = (PointCode.OK, PointCode.OUT_OF_IMAGE, PointCode.PARSE_FAILURE,
                                PointCode.INVALID_VALUE, PointCode.NOT_RUN)


@pytest.mark.parametrize("codes, status, needle", [
    ([OK, OK], StatusCode.OK, "2 point(s) answered"),
    ([OK, NOT_RUN, OUT], StatusCode.PARTIAL, "1 of 3 point(s) answered"),
    ([OUT, OUT, NOT_RUN], StatusCode.INVALID_REQUEST, "2 outside the image (or NaN/infinite), 1 not run"),
    ([NOT_RUN, NOT_RUN, OUT], StatusCode.BACKEND_ERROR, "1 outside the image (or NaN/infinite), 2 not run"),
    ([NOT_RUN, NOT_RUN], StatusCode.BACKEND_ERROR, "the backend failed for every point: injected"),
    ([NOT_RUN, PARSE], StatusCode.BACKEND_ERROR, "1 not run (the backend failed), 1 without a usable answer"),
    ([BAD, PARSE, OUT], StatusCode.PARSE_FAILURE, "1 outside the image (or NaN/infinite), 2 without a usable"),
    ([BAD, BAD], StatusCode.PARSE_FAILURE, "no point succeeded: 2 without a usable answer"),
    ([OUT, OUT], StatusCode.INVALID_REQUEST, "every pixel is outside the image"),
])
def test_no_point_answered_is_told_as_its_dominant_failure(codes, status, needle) -> None:
    outcome, message = point_outcome(np.array(codes, dtype=np.int64), ["injected"] * len(codes))
    assert OUTCOME_STATUS[outcome] == status and needle in message, (outcome, message)
