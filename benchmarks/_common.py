"""Shared helpers of the benchmarks: machine description, model choice, timing, docs sections.

Every benchmark script stays runnable alone (`python benchmarks/<name>.py`); run_all.py
calls them in turn and rewrites docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
DOCS = ROOT / "docs" / "benchmarks.md"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * size / 2**30


def load_average() -> str:
    try:
        return " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_info() -> dict:
    """CPU model, cores, RAM, torch version, CUDA device (when there is one)."""
    import torch

    info = {"os": f"{platform.system()} {platform.release()}", "cpu": cpu_model(), "cores": os.cpu_count(),
            "ram_gib": ram_gib(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda_device": None, "load_average": load_average()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


def pick_device(name: str | None) -> str:
    """'auto'/None -> cuda when available, else cpu (the engine's one device choice)."""
    from mama_core.optim import auto_device

    return str(auto_device(name or None))


def resolve_model(model: str, tmp: Path) -> tuple[str, str]:
    """(name or directory for Predictor.load, label for reports): the demo model when it is
    built, else a random-init model with the demo architecture, labelled so."""
    from query_latency import resolve  # the same rule as benchmarks/query_latency.py

    return resolve(model, tmp)


def rss_mb() -> float:
    """Current resident set size (not the high-water mark), from /proc."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timer() -> Iterator[list[float]]:
    out: list[float] = []
    t = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - t)


def replace_section(title: str, body: str, path: Path = DOCS) -> None:
    """Replace the '## title' section of docs/benchmarks.md (or append it), keeping the rest."""
    heading = f"## {title}"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    section = heading + "\n\n" + body.strip("\n") + "\n"
    start = text.find(heading + "\n")
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(heading))
    path.write_text(text[:start] + section + (text[end:] if end >= 0 else ""))


def table(rows: list[tuple[str, str]], header: tuple[str, str] = ("measure", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} |" for a, b in rows])
