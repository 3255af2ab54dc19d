"""Start and stop real node processes for integration tests, benchmarks and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from vlm3_ros.tools import ros_env


class NodeProcess:
    """A Python module run as its own process (``python -m MODULE ARGS``) with output to a log.

    Used as a context manager; on exit it sends SIGINT (what Ctrl-C does, so rclpy shuts down
    cleanly), then SIGKILL if the process has not ended after ``stop_timeout`` seconds.
    """

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.module = module
        self.args = list(args)
        self.env = dict(os.environ if env is None else env)
        ros_env.apply(self.env)
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="vlm3_ros_proc_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{module.rsplit('.', 1)[-1]}.log"
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ros_env.REPO_ROOT),
        )
        log.close()
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        """Block until ``needle`` appears in the log; raise with the log if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.proc.returncode} before logging "
                    f"{needle!r}:\n{self.log_text()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"{self.module} did not log {needle!r} in {timeout}s:\n{self.log_text()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
