"""Run every benchmark and rewrite docs/benchmarks.md with the machine and one table each.

    python benchmarks/run_all.py [--quick] [--device auto|cpu|cuda] [--model demo] [--no-docs]
    python benchmarks/run_all.py --only study_open,memory_bound

Each benchmark runs in its own process (`python benchmarks/<name>.py ... --json`), so memory
and Qt state never leak between them and each stays runnable alone; the command of every
run is printed in its section. The demo model is used when resources/models/demo is built,
else a random-init model with the demo architecture (labelled so). `--quick` shortens every
run (fewer steps, sentences, studies, smaller images) for a smoke check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import DOCS, ROOT, machine_info, pick_device, table  # noqa: E402


@dataclass
class Bench:
    name: str  # script name without .py
    title: str  # docs section
    full: list[str]
    quick: list[str]
    device: bool = True  # takes --device
    model: bool = True  # takes --model
    extra: list[str] = field(default_factory=list)

    def args(self, quick: bool, device: str, model: str) -> list[str]:
        out = list(self.quick if quick else self.full) + self.extra
        out += ["--device", device] if self.device else []
        out += ["--model", model] if self.model else []
        return out


BENCHES = [
    Bench("train_step", "Training step", ["--steps", "8"], ["--steps", "3"], model=False),
    Bench("query_latency", "Query latency", ["--sentences", "50"], ["--sentences", "10", "--rows", "1024"]),
    Bench("study_open", "Study open", ["--repeats", "5"], ["--repeats", "2"], device=False, model=False),
    Bench("index_throughput", "Index throughput", ["--studies", "8", "--rows", "1024"],
          ["--studies", "2", "--rows", "512"]),
    Bench("gui_latency", "GUI event-loop latency", ["--studies", "6", "--rows", "1024", "--steps", "30"],
          ["--studies", "4", "--rows", "512", "--steps", "10"]),
    Bench("memory_bound", "Memory bound", ["--studies", "50", "--rows", "1024"], ["--studies", "30", "--rows", "512"]),
    Bench("data_pipeline", "Data pipeline (one worker)", ["--data", "mammograms"], ["--data", "mammograms", "--pairs", "48"],
          device=False, model=False),
    Bench("folder_scan", "Folder scan and demo-data generation", ["--repeats", "5", "--generate", "4"],
          ["--repeats", "2", "--generate", "1"], device=False, model=False),
]


def run_one(bench: Bench, args: list[str], timeout_s: float) -> tuple[dict | None, str, float]:
    """(parsed JSON or None, the command as text, seconds)."""
    cmd = [sys.executable, str(HERE / f"{bench.name}.py"), *args, "--json"]
    shown = "python benchmarks/" + " ".join([f"{bench.name}.py", *args])
    print(f"[run_all] {shown}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, shown, time.perf_counter() - t
    seconds = time.perf_counter() - t
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        sys.stderr.write(proc.stderr[-3000:])
        return None, shown, seconds
    return json.loads(lines[-1]), shown, seconds


# ----- markdown per benchmark -------------------------------------------------------------------

TRAIN_INTRO = """One optimiser step (forward of both views and the caption, eq. (4) loss, backward, AdamW)
of the trainer against a baseline configured like the released reference recipe, in the same
process: the baseline uses eager attention with `output_attentions=True`, autograd anomaly
detection, and pure bf16 weights on CUDA (fp32 on CPU); ours uses SDPA, no anomaly
detection, fp32 master weights with bf16 autocast on CUDA. Random weights, synthetic inputs
at the config's shapes, real masked captions. Step 0 is a warm-up; the figure is the median.
Peak memory on CPU is the process high-water mark (the baseline runs second, so it includes
ours). The ratio that matters is on a GPU at the paper's shapes:
`python benchmarks/train_step.py --config resources/configs/mama-b14.yaml --set model.text.path=/models/BioMedLM --device cuda --steps 20`."""


def md_train_step(r: dict) -> str:
    rows = [(name, f"{r[name]['step_time_s']:.3f} s/step, {r[name]['images_per_s']:.2f} pairs/s, "
                   f"peak {r[name]['peak_memory_mb']:.0f} MB") for name in ("ours", "baseline") if name in r]
    if "speedup" in r:
        rows.append(("speed-up (baseline / ours)", f"{r['speedup']:.2f}x"))
    return TRAIN_INTRO + f"\n\nConfig `{Path(r['config']).relative_to(ROOT) if Path(r['config']).is_absolute() else r['config']}`, " \
        f"batch {r['batch_size']}, device {r['device']}, median of {r['steps']} steps.\n\n" + table(rows, ("case", "result")) + "\n"


def md_query_latency(r: dict) -> str:
    import query_latency

    text = query_latency.markdown(r)
    return text.split("\n", 1)[1].lstrip("\n")  # drop its own '## Query latency' heading


def md_module(name: str) -> callable:
    def render(r: dict) -> str:
        module = __import__(name)
        if name == "memory_bound":
            return module.markdown(r, r.get("tolerance_mb", 40.0))
        return module.markdown(r)
    return render


RENDER = {"train_step": md_train_step, "query_latency": md_query_latency}


def machine_section(info: dict, quick: bool, device: str, load_before: str) -> str:
    ram = f"{info['ram_gib']:.0f} GiB RAM" if info["ram_gib"] else "RAM unknown"
    rows = [("OS", info["os"]), ("CPU", f"{info['cpu']}, {info['cores']} logical cores"), ("memory", ram),
            ("Python / torch", f"{info['python']} / torch {info['torch']} ({info['torch_threads']} threads)"),
            ("CUDA device", info["cuda_device"] or "none"), ("benchmark device", device),
            ("load average (1/5/15 min)", f"before {load_before}; after {info['load_average']}"),
            ("run", f"{date.today().isoformat()}, {'--quick' if quick else 'full'}")]
    return table(rows, ("", "")) + "\n"


def write_docs(sections: list[tuple[str, str]], machine: str, quick: bool, note: str) -> None:
    head = ["# Benchmarks", "",
            "Every figure below comes from `python benchmarks/run_all.py" + (" --quick" if quick else "") + "`,",
            "which runs each benchmark in its own process and rewrote this file; each section names the",
            "command that produced it (every script also runs alone). Timings on a shared machine are",
            "noisy: compare numbers only within one run.", ""]
    if note:
        head += [note, ""]
    parts = ["\n".join(head), "## Machine\n\n" + machine]
    parts += [f"## {title}\n\n{body}" for title, body in sections]
    DOCS.write_text("\n".join(p.rstrip("\n") + "\n" for p in parts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke check)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--model", default="demo", help="'demo' (random-init stand-in when not built), 'random' or a dir")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--timeout", type=float, default=1800.0, help="limit per benchmark (s)")
    ap.add_argument("--note", default="", help="text added under the title (e.g. what else the machine ran)")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    wanted = {n for n in args.only.split(",") if n}
    load_before = machine_info()["load_average"]
    sections, failed = [], []
    for bench in BENCHES:
        if wanted and bench.name not in wanted:
            continue
        result, shown, seconds = run_one(bench, bench.args(args.quick, device, args.model), args.timeout)
        if result is None:
            failed.append(bench.name)
            body = f"`{shown}` failed or timed out after {seconds:.0f} s on this run; see its own output.\n"
        else:
            body = RENDER.get(bench.name, md_module(bench.name))(result)
            body += f"\n(run took {seconds:.0f} s; command as run: `{shown}`)\n"
        print(f"## {bench.title}\n\n{body}", flush=True)
        sections.append((bench.title, body))
    machine = machine_section(machine_info(), args.quick, device, load_before)
    print("## Machine\n\n" + machine)
    if not args.no_docs:
        write_docs(sections, machine, args.quick, args.note)
    if failed:
        print(f"[run_all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
