"""Run `python -m mama_core.cli ...` as a child process and SIGKILL it at a random moment."""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    returncode: int
    lines: list[str]
    stderr: str
    killed_after_s: float | None = None
    killed_after_lines: int | None = None
    events: list[dict] = field(default_factory=list)


def cli_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MAMA_DATA_DIR=str(tmp / "user-data"), MAMA_CACHE_DIR=str(tmp / "user-cache"),
               MAMA_LOG_DIR=str(tmp / "user-log"), MAMA_CONFIG_DIR=str(tmp / "user-config"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
    env.update(extra or {})
    return env


def _pump(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)
    sink.put(None)


def run_cli(args: list[str], env: dict[str, str], *, kill_after_lines: int | None = None,
            kill_delay_s: float = 0.0, timeout_s: float = 300.0, prefix: list[str] | None = None) -> Outcome:
    """Run the command; with `kill_after_lines`, SIGKILL it `kill_delay_s` seconds after that
    many stdout lines (0: after the delay from the start). A run that finishes first is
    simply reported as finished."""
    cmd = [*(prefix or [sys.executable, "-m", "mama_core.cli"]), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    err_chunks: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True).start()
    seen: list[str] = []
    started = time.monotonic()
    kill_at = started + kill_delay_s if kill_after_lines == 0 else None
    killed_s = None
    while True:
        now = time.monotonic()
        if now - started > timeout_s:
            proc.kill()
            raise TimeoutError(f"{' '.join(args[:2])} did not finish in {timeout_s:.0f} s; output: {seen[-5:]}")
        if kill_at is not None and now >= kill_at and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_s, kill_at = now - started, None
        try:
            line = lines.get(timeout=0.05)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line.rstrip("\n"))
        if kill_after_lines and len(seen) == kill_after_lines and killed_s is None:
            kill_at = time.monotonic() + kill_delay_s
    code = proc.wait()
    time.sleep(0.05)
    events = []
    for text in seen:
        try:
            events.append(json.loads(text))
        except ValueError:
            pass
    return Outcome(code, seen, "".join(err_chunks), killed_s, kill_after_lines if killed_s is not None else None,
                   events)


def random_kill_plan(seed: int, n: int, max_lines: int, max_delay: float) -> list[tuple[int, float]]:
    """n (lines to wait for, extra delay) pairs; lines 0 means a delay from the start."""
    rnd = random.Random(seed)
    return [(rnd.randint(0, max_lines), rnd.uniform(0.0, max_delay)) for _ in range(n)]
