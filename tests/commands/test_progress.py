"""The one progress display of the CLI: a live bar on a terminal (checked in a real
pseudo-terminal), plain periodic lines in a pipe or file, nothing in --json mode."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from mama_core.cli import main
from mama_core.commands._progress import JobProgress, format_duration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REPO = Path(__file__).resolve().parents[2]


def _drain(fd: int, sink: list[bytes]) -> threading.Thread:
    """Read a pty master until the other side closes (a full pty buffer would block the writer)."""
    def loop() -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the slave side is closed
                return
            if not chunk:
                return
            sink.append(chunk)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _screen(raw: bytes) -> list[str]:
    """What a terminal would have shown, line by line (each redraw starts with a CR)."""
    text = ANSI.sub("", raw.decode("utf-8", "replace"))
    return [part.strip() for part in re.split(r"[\r\n]+", text) if part.strip()]


def test_plain_lines_are_periodic_with_rate_and_eta():
    stream = io.StringIO()
    with JobProgress("indexing", 50, "files", stream=stream, interval=3600) as bar:
        for i in range(1, 51):
            time.sleep(0.001)
            bar.update(i)
    lines = stream.getvalue().splitlines()
    # the first report and the end of the phase only: the interval was never reached
    assert len(lines) == 2, lines
    assert lines[0].startswith("indexing: 1/50 files (2 %)")
    assert re.search(r"indexing: 50/50 files \(100 %\), [\d.]+ files/s, ETA 0\.0 s, elapsed [\d.]+ s", lines[1]), lines[1]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_plain_phases_each_end_with_a_line_and_restart_the_rate():
    stream = io.StringIO()
    with JobProgress("features", 4, "images", stream=stream, interval=0) as bar:
        for i in range(1, 5):
            bar.update(i)
        bar.update(1, 10, description="training", info="loss 0.5000", unit="steps")
        bar.update(10)
    lines = stream.getvalue().splitlines()
    assert lines[3].startswith("features: 4/4 images")
    assert lines[4].startswith("training: 1/10 steps") and "? steps/s" in lines[4] and lines[4].endswith("loss 0.5000")
    assert lines[-1].startswith("training: 10/10 steps (100 %)")


def test_disabled_writes_nothing():
    stream = io.StringIO()
    with JobProgress("indexing", 3, stream=stream, enabled=False) as bar:
        for i in range(1, 4):
            bar.update(i)
        bar.message("not shown")
    assert stream.getvalue() == ""


def test_terminal_bar_in_a_pseudo_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    master, slave = pty.openpty()
    raw: list[bytes] = []
    reader = _drain(master, raw)
    with open(slave, "w", encoding="utf-8", closefd=True) as stream:
        with JobProgress("encoding images", 6, "images", stream=stream) as bar:
            assert bar.live
            for i in range(1, 7):
                time.sleep(0.15)
                bar.update(i, info=f"{i} encoded")
    reader.join(timeout=5)
    os.close(master)
    text = b"".join(raw).decode("utf-8", "replace")
    assert "\r" in text and "\x1b[" in text  # redrawn in place, not one line per update
    screen = _screen(b"".join(raw))
    assert any(re.search(r"encoding images .*3/6 [\d.]+ images/s ETA [\d.:]+ s?", line) for line in screen), screen
    assert re.search(r"6/6 .*done", screen[-1]), screen[-1]


def test_format_duration():
    assert format_duration(4.24) == "4.2 s"
    assert format_duration(725) == "12:05"
    assert format_duration(3 * 3600 + 4 * 60 + 5) == "3:04:05"
    assert format_duration(None) == "?"


def test_demo_data_in_a_terminal_shows_a_bar_and_a_readable_summary(tmp_path):
    """`mama demo-data` as a user runs it in a terminal: the bar (rate, ETA) on the terminal,
    then a summary of counts and paths, never a dataclass repr."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO), COLUMNS="120")
    proc = subprocess.Popen([sys.executable, "-m", "mama_core.cli", "demo-data", str(tmp_path / "d"), "--studies", "3",
                             "--rows", "512"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path)
    os.close(slave)
    raw: list[bytes] = []
    reader = _drain(master, raw)
    assert proc.wait(timeout=120) == 0
    reader.join(timeout=5)
    os.close(master)
    screen = _screen(b"".join(raw))
    assert any(re.search(r"writing synthetic studies .*3/3 .*studies/s.*done", line) for line in screen), screen
    # The ETA column is there; it reads "?" until a rate is known, and a fast machine may finish
    # the three studies before the bar refreshes with a number.
    assert any(re.search(r"ETA (\?|[\d.:]+)", line) for line in screen), screen
    assert any(line.startswith("wrote 3 synthetic studies (12 images) to ") for line in screen), screen
    assert any(line.startswith("metadata:") and line.endswith("metadata.csv") for line in screen), screen
    assert "SyntheticSummary(" not in "\n".join(screen)


def test_demo_data_json_is_one_json_document_and_no_progress(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--studies", "1", "--rows", "256", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["studies"] == 1 and doc["images"] == 4 and Path(doc["out"]).is_dir()
    assert "writing" not in err


def test_demo_data_plain_text_when_not_a_terminal(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--studies", "2", "--rows", "256"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote 2 synthetic studies (8 images) to ") and "SyntheticSummary(" not in out
    assert "ground truth:" in out and "density (studies):" in out
    assert err.splitlines()[-1].startswith("writing synthetic studies: 2/2 studies (100 %)")  # progress on stderr
