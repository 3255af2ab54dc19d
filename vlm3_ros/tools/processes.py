"""Start and stop real node processes for integration tests, benchmarks and the demo."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from vlm3_ros.tools import ros_env


class LoggedProcess:
    """A child process whose output goes to a log file, waited on by what it logs."""

    log_path: Path
    proc: subprocess.Popen[bytes] | None
    poll_s = 0.05

    @property
    def label(self) -> str:
        """How errors name the process."""
        raise NotImplementedError

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 60.0) -> None:
        """Block until ``needle`` appears in the log; raise with the log if the process ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode} before logging "
                                   f"{needle!r}:\n{self.log_text()}")
            time.sleep(self.poll_s)
        raise TimeoutError(f"{self.label} did not log {needle!r} in {timeout}s:\n{self.log_text()}")


class NodeProcess(LoggedProcess):
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

    @property
    def label(self) -> str:
        return self.module

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


class CommandProcess(LoggedProcess):
    """A command (``ros2 launch ...``, ``vlm3-ros bringup ...``) in its own session, output to a log.

    :meth:`ctrl_c` sends SIGINT to the whole process group, as a terminal's Ctrl-C does: the
    command and every process it started get it (a node under ``ros2 launch`` gets it once from
    the terminal and once more forwarded by launch). :meth:`stop` is the fallback of a test's
    teardown: Ctrl-C, then SIGKILL to the group after ``stop_timeout`` seconds.
    """

    poll_s = 0.1

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path | None = None,
                 stop_timeout: float = 20.0) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd or ros_env.REPO_ROOT
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CommandProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=str(self.cwd),
                                         start_new_session=True)
        return self

    @property
    def label(self) -> str:
        return str(self.argv[:3])

    def ctrl_c(self) -> None:
        """SIGINT to the process group (what Ctrl-C in a terminal does)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float) -> int:
        """The exit code; raises subprocess.TimeoutExpired if it has not ended in ``timeout`` s."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.ctrl_c()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(self.stop_timeout)
        # Whatever of the group is left (a node launch could not stop): no process outlives a test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self.proc.returncode


class Ros2Cli:
    """Runs ``ros2 ...`` command lines as a user types them, in a given environment and folder.

    ``ros2`` verbs that look at the graph (lifecycle, param, topic) start the ros2 daemon of the
    environment's domain on first use; :meth:`stop_daemon` ends it (a test's teardown).
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, line: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """One command line (shell quoting, as in the docs), its output; raises on ``timeout``.

        Run again while it says ``Node not found``: the ros2 daemon's view of the graph lags and,
        on Jazzy, now and then misses a node it listed a moment before; a user types it again."""
        argv = shlex.split(line)
        if not argv or argv[0] != "ros2":
            raise ValueError(f"not a ros2 command line: {line!r}")
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(argv, env=self.env, cwd=str(self.cwd), capture_output=True, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()), stdin=subprocess.DEVNULL)
            if "Node not found" not in done.stdout + done.stderr or time.monotonic() > deadline - 2.0:
                return done
            time.sleep(0.5)

    def until(self, line: str, expect: str, timeout: float = 30.0) -> str:
        """Run ``line`` again until its output contains ``expect`` (discovery takes a moment after
        a node starts, as for a user); its output, or AssertionError with the last output."""
        deadline = time.monotonic() + timeout
        out = ""
        while True:
            remaining = deadline - time.monotonic()
            try:
                done = self.run(line, timeout=max(5.0, remaining))
                out = done.stdout + done.stderr
            except subprocess.TimeoutExpired as e:
                out = f"(timed out) {e.stdout!r} {e.stderr!r}"
            if expect in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{line!r} did not say {expect!r} in {timeout:.0f} s; last output:\n{out}")
            time.sleep(0.5)

    def start(self, line: str, log_path: Path) -> CommandProcess:
        """A long-running command line (``ros2 launch``, ``ros2 topic echo``) in its own session."""
        return CommandProcess(shlex.split(line), self.env, log_path, cwd=self.cwd).start()

    def stop_daemon(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.run("ros2 daemon stop", timeout=20)
