"""The serving core mirrors the interfaces' constants without importing them (it is ROS-free):
status codes, point codes, frame-selector modes, depth types and diagnostic levels must equal the
generated messages' values, and every task of the registry has its service interface."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus

from vlm3_ros.msg import FrameSelector, PointStatus, Status
from vlm3_ros.ros.services import SERVICES
from vlm3_ros.serving.core import DEPTH_TYPE_CODES, FrameMode, HealthLevel
from vlm3_ros.serving.status import StatusCode
from vlm3_ros.srv import GetDepth
from vlm3_ros.tasks.common import PointCode
from vlm3_ros.tasks.task_registry import TASKS


def _constants(cls: type) -> dict[str, int]:
    return {n: int.from_bytes(v, "little") if isinstance(v, bytes) else v
            for n, v in vars(cls).items() if n.isupper() and isinstance(v, (int, bytes))}


def test_status_point_and_selector_codes_mirror_the_messages() -> None:
    assert {c.name: c.value for c in StatusCode} == _constants(Status)
    assert {c.name: c.value for c in PointCode} == _constants(PointStatus)
    assert {c.name: c.value for c in FrameMode} == _constants(FrameSelector)
    assert DEPTH_TYPE_CODES == {GetDepth.Request.Z_DEPTH: "z_depth", GetDepth.Request.RANGE: "range"}
    assert {c.name: c.value for c in HealthLevel} == _constants(DiagnosticStatus)


def test_every_task_has_its_service_interface() -> None:
    assert set(SERVICES) == set(TASKS)
    for name, spec in TASKS.items():
        srv_type, _ = SERVICES[name]
        assert srv_type.__name__ == spec.service_type
