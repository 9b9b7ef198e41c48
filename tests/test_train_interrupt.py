"""Ctrl-C during ``lf-reasoning train``, and any other end of ours: no process the trainer started may outlive us.

``train`` launches ``llamafactory-cli``, so these tests run ``run_plan`` (what ``lf-reasoning train`` calls) on a
fake trainer: a real Python process that starts a grandchild, which may ignore SIGINT and SIGTERM (as a torchrun
rank or a dataloader worker may). For Ctrl-C, ``run_plan`` runs in a process of its own, the leader of a new
process group that gets SIGINT as a whole, as a terminal signals its foreground job."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lf_reasoning.commands import train
from lf_reasoning.errors import EXIT_INTERRUPTED

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX")

TRAINER = """
import os, signal, subprocess, sys, time
from pathlib import Path

work, ignored, on_sigint = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
grandchild = (
    "import os, signal, sys, time\\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\\n"  # unless ignored: end without a KeyboardInterrupt traceback
    f"for name in {[name for name in ignored.split(',') if name]!r}:\\n"
    "    signal.signal(getattr(signal, 'SIG' + name), signal.SIG_IGN)\\n"
    "open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\\n"
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\\n"  # whole, once it exists
    "time.sleep(60)\\n"
)
subprocess.Popen([sys.executable, "-c", grandchild, str(work / "grandchild.pid")])


def interrupted(signum, frame):
    print("trainer: saving after SIGINT", flush=True)
    if on_sigint == "exit":
        sys.exit(1)


signal.signal(signal.SIGINT, interrupted)
(work / "trainer.pid.tmp").write_text(str(os.getpid()))
os.replace(work / "trainer.pid.tmp", work / "trainer.pid")
print("trainer: step 1", flush=True)
while True:
    time.sleep(0.05)
"""

# our side: what `lf-reasoning train` runs, with the SIGKILL grace (shortened to keep the tests fast) first
OURS = """
import sys
from pathlib import Path
from lf_reasoning.commands import train

train.STOP_GRACE_S = float(sys.argv[1])
plan = train.RunPlan(Path("train.yaml"), {}, "predict", sys.argv[2:])
sys.exit(train.run_plan(plan, echo=lambda text: print(text, end="", flush=True)))
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie that nobody reaped yet does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:  # no /proc (macOS): kill(pid, 0) said it exists
        return True


def _wait_for(path: Path, process: subprocess.Popen[str] | None, timeout: float = 20) -> None:
    """Until ``path`` exists, failing if ``process`` (the one that should write it, or start its writer) ends."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process is None or process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def _ends(pid: int, within: float = 3) -> bool:
    """Whether ``pid`` is gone within ``within`` seconds (a process that closed its output may still be exiting)."""
    deadline = time.monotonic() + within
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class Run:
    def __init__(self, work: Path, ignored: str, on_sigint: str, grace: float) -> None:
        trainer = work / "trainer.py"
        trainer.write_text(TRAINER, encoding="utf-8")
        self.work = work
        self.ours = subprocess.Popen(
            [sys.executable, "-c", OURS, str(grace), sys.executable, str(trainer), str(work), ignored, on_sigint],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # our own "terminal job": killpg(ours.pid) is the terminal's Ctrl-C
            # a shell running the tests in the background may have set SIGINT to "ignore"
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        _wait_for(work / "grandchild.pid", self.ours)
        _wait_for(work / "trainer.pid", self.ours)
        self.grandchild = int((work / "grandchild.pid").read_text())
        self.trainer = int((work / "trainer.pid").read_text())
        self.output: list[str] = []
        assert self.ours.stdout is not None
        self.reader = threading.Thread(target=lambda: self.output.extend(self.ours.stdout), daemon=True)
        self.reader.start()

    def wait_for_output(self, text: str) -> None:
        """Until we echoed ``text``: the trainer got this far, and we handled any Ctrl-C sent before (two signals
        sent at once may arrive as one)."""
        deadline = time.monotonic() + 10
        while text not in "".join(self.output):
            assert time.monotonic() < deadline, "".join(self.output)
            time.sleep(0.01)

    def finish(self) -> str:
        self.ours.wait(timeout=15)
        self.reader.join(timeout=5)
        return "".join(self.output)

    def kill_leftovers(self) -> None:
        """Leave no process behind when a test fails."""
        for pid in (self.ours.pid, self.trainer, self.grandchild):
            if _running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.ours.wait()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start_run(ignored: str, on_sigint: str, grace: float = 0.3) -> Run:
        runs.append(Run(tmp_path, ignored, on_sigint, grace))
        return runs[-1]

    yield start_run
    for run in runs:
        run.kill_leftovers()


def test_second_ctrl_c_stops_every_process_the_trainer_started(start: Callable[..., Run]) -> None:
    """The first Ctrl-C reaches the trainer (from the terminal) and we stop nothing by force; the second ends the
    trainer and a grandchild that ignores SIGINT and SIGTERM (SIGKILL after the grace), the output all drained."""
    run = start("INT,TERM", "continue")
    run.wait_for_output("trainer: step 1\n")
    os.killpg(run.ours.pid, signal.SIGINT)
    run.wait_for_output("trainer: saving after SIGINT\n")
    assert _running(run.trainer) and _running(run.grandchild) and run.ours.poll() is None
    os.killpg(run.ours.pid, signal.SIGINT)
    out = run.finish()
    assert run.ours.returncode == EXIT_INTERRUPTED, out
    assert _ends(run.trainer) and _ends(run.grandchild)
    assert "trainer: step 1\ntrainer: saving after SIGINT\n" in out and "Traceback" not in out


def test_third_ctrl_c_cuts_the_grace_short(start: Callable[..., Run]) -> None:
    """A Ctrl-C while the second one's SIGTERM has ended the trainer but not its grandchild (which ignores it)
    SIGKILLs the grandchild at once instead of after the grace (60 s, longer than ``Run.finish`` waits)."""
    run = start("INT,TERM", "continue", grace=60)
    run.wait_for_output("trainer: step 1\n")
    os.killpg(run.ours.pid, signal.SIGINT)
    run.wait_for_output("trainer: saving after SIGINT\n")
    os.killpg(run.ours.pid, signal.SIGINT)
    assert _ends(run.trainer) and _running(run.grandchild)
    os.killpg(run.ours.pid, signal.SIGINT)
    out = run.finish()
    assert run.ours.returncode == EXIT_INTERRUPTED, out
    assert _ends(run.grandchild) and "Traceback" not in out


def test_first_ctrl_c_lets_the_trainer_stop_by_itself(start: Callable[..., Run]) -> None:
    """A trainer that stops on SIGINT: one Ctrl-C reaches it and its grandchild, its last output is drained and we
    exit 130."""
    run = start("", "exit")
    run.wait_for_output("trainer: step 1\n")
    os.killpg(run.ours.pid, signal.SIGINT)
    out = run.finish()
    assert run.ours.returncode == EXIT_INTERRUPTED, out
    assert _ends(run.trainer) and _ends(run.grandchild)
    assert "trainer: step 1\ntrainer: saving after SIGINT\n" in out and "Traceback" not in out


def test_ctrl_c_pressed_three_times_at_once_is_one_clean_stop(start: Callable[..., Run]) -> None:
    """The third Ctrl-C a few milliseconds after the second (while the tree is being collected) only cuts the
    grace short: exit 130, no traceback, nothing left."""
    run = start("INT,TERM", "continue", grace=60)
    run.wait_for_output("trainer: step 1\n")
    os.killpg(run.ours.pid, signal.SIGINT)
    run.wait_for_output("trainer: saving after SIGINT\n")
    for _ in range(2):
        os.killpg(run.ours.pid, signal.SIGINT)
        time.sleep(0.005)
    out = run.finish()
    assert run.ours.returncode == EXIT_INTERRUPTED, out
    assert _ends(run.trainer) and _ends(run.grandchild) and "Traceback" not in out


def test_an_error_of_ours_stops_every_process_the_trainer_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output we cannot write (``lf-reasoning train … | head`` once head exits): the error is raised only once the
    trainer and a grandchild that ignores SIGINT and SIGTERM are stopped."""
    monkeypatch.setattr(train, "STOP_GRACE_S", 0.3)
    trainer = tmp_path / "trainer.py"
    trainer.write_text(TRAINER, encoding="utf-8")
    command = [sys.executable, str(trainer), str(tmp_path), "INT,TERM", "continue"]

    def closed_output(text: str) -> None:
        _wait_for(tmp_path / "grandchild.pid", None)  # the trainer printed after writing trainer.pid
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        train.run_plan(train.RunPlan(Path("train.yaml"), {}, "predict", command), echo=closed_output)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ours was put back
    pids = [int((tmp_path / name).read_text()) for name in ("trainer.pid", "grandchild.pid")]
    try:
        assert all(_ends(pid) for pid in pids)
    finally:
        for pid in filter(_running, pids):
            os.kill(pid, signal.SIGKILL)
