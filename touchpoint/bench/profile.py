"""Where a Touchpoint worker's time goes: py-spy attached from outside, summarised per function.

py-spy samples the worker's stacks without changing its code (``--nonblocking`` does not even
pause it), so the profiled run is the same worker the figures describe, only a little slower.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE_HZ = 100


@dataclass(frozen=True)
class FrameShare:
    frame: str
    self_share: float  # of all samples, the share with this frame on top of the stack
    total_share: float  # of all samples, the share with this frame anywhere on the stack

    def to_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "self": round(self.self_share, 4), "total": round(self.total_share, 4)}


def py_spy_binary() -> str | None:
    """py-spy next to this interpreter (the venv's) or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Record collapsed stacks of ``pid`` into ``output`` until it exits."""
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy (it needs ptrace rights on the worker)")
    log = open(output.with_suffix(".log"), "ab")
    try:
        return subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--rate", str(SAMPLE_RATE_HZ),
             "--nonblocking", "--output", str(output)],
            stdout=log, stderr=subprocess.STDOUT,
        )
    finally:
        log.close()


def top_frames(collapsed: str, limit: int = 15) -> list[FrameShare]:
    """The frames with the most self time in py-spy's raw output (``a;b;c count`` per line).

    Total time counts a frame once per sample even when it recurses.
    """
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    if samples == 0:
        return []
    return [FrameShare(frame, count / samples, anywhere[frame] / samples) for frame, count in own.most_common(limit)]
