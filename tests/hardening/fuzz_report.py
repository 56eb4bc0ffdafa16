"""Count fuzz outcomes per mutation kind: `python -m tests.hardening.fuzz_report [--cases N]`.

For every seed file (4 real pydicom-data/pydicom files + 1 synthetic MG image) and every
mutation kind, N mutated files (seeds 0..N-1, so the run is reproducible) are read by
`read_image` in a child process limited to 10 s and 3 GB of address space. Prints a
table (Markdown with --markdown) of read-ok / MamaError / failure counts and lists each
failure with the (file, kind, seed) that reproduces it. Exit status 1 when any case fails.
Also runs `find_studies` over a folder of mutated files from the synthetic study.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.hardening import fuzzlib, modelfuzz, tablefuzz

OUTCOMES = ("ok", "mama_error", "other_error", "memory_error", "hang", "crash")


def run_reads(tmp: Path, cases: int, pool: fuzzlib.ReaderPool) -> tuple[dict, list]:
    seeds = fuzzlib.seed_files(tmp)
    counts: dict[str, Counter] = defaultdict(Counter)
    failures = []
    work = tmp / "cases"
    work.mkdir(exist_ok=True)
    for kind in fuzzlib.MUTATIONS:
        for name, data in seeds.items():
            for seed in range(cases):
                path = work / f"{kind}-{seed}-{name}"
                path.write_bytes(fuzzlib.mutate(data, kind, seed))
                answer = pool.run("read_image", path)
                counts[kind][answer["outcome"]] += 1
                if not fuzzlib.acceptable(answer):
                    counts[kind]["unacceptable"] += 1
                    failures.append((name, kind, seed, answer))
                path.unlink()
    return counts, failures


def run_find_studies(tmp: Path, cases: int, pool: fuzzlib.ReaderPool) -> tuple[Counter, list]:
    """Folders holding the synthetic study with every file mutated (all kinds, seed-varied)."""
    study = sorted(fuzzlib.synthetic_dir(tmp).rglob("*.dcm"))
    counts, failures = Counter(), []
    for seed in range(cases):
        folder = tmp / f"folder-{seed}"
        folder.mkdir()
        for i, src in enumerate(study):
            for kind in fuzzlib.MUTATIONS:
                (folder / f"{src.stem}-{kind}.dcm").write_bytes(fuzzlib.mutate(src.read_bytes(), kind, seed * 31 + i))
        answer = pool.run("find_studies", folder)
        counts[answer["outcome"]] += 1
        if answer["outcome"] != "ok":
            failures.append(("folder", "find_studies", seed, answer))
    return counts, failures


def run_tables(tmp: Path, cases: int) -> tuple[dict, list]:
    """Every (reader target, mutation kind) `cases` times, in this process."""
    synthetic = fuzzlib.synthetic_dir(tmp)
    counts: dict[str, Counter] = defaultdict(Counter)
    failures = []
    for kind in tablefuzz.KINDS:
        for target in tablefuzz.TARGETS:
            for seed in range(cases):
                victim, call = tablefuzz.prepare(target, tmp / "tables" / f"{target}-{kind}-{seed}", synthetic)
                victim.write_bytes(tablefuzz.mutate_table(victim.read_bytes(), kind, seed))
                result, detail = tablefuzz.outcome(call, victim)
                counts[kind][result] += 1
                if result not in ("ok", "mama_error"):
                    counts[kind]["unacceptable"] += 1
                    failures.append((target, kind, seed, detail))
    return counts, failures


def run_models(tmp: Path) -> tuple[dict, list]:
    """Every damaged-model-directory case through load_model_dir and Predictor.load."""
    template = modelfuzz.build_tiny_model_dir(tmp / "tiny")
    pool = fuzzlib.ReaderPool(timeout=30, models=True)
    counts: dict[str, Counter] = defaultdict(Counter)
    failures = []
    try:
        for i, case in enumerate(modelfuzz.CASES):
            directory = modelfuzz.make_case(template, case, tmp / "models" / f"case-{i}")
            for op in ("load_model_dir", "predictor_load"):
                answer = pool.run(op, directory)
                counts[op][answer["outcome"]] += 1
                if not fuzzlib.acceptable(answer):
                    counts[op]["unacceptable"] += 1
                    failures.append((case, op, 0, answer))
    finally:
        pool.close()
    return counts, failures


def table(counts: dict[str, Counter], markdown: bool) -> str:
    unnamed = any(c["mama_error_unnamed"] for c in counts.values())
    outcomes = [*OUTCOMES, *(["mama_error_unnamed"] if unnamed else [])]
    head = ["kind", "cases", *outcomes, "unacceptable"]
    rows = [[kind, str(sum(c[o] for o in outcomes)), *(str(c[o]) for o in outcomes), str(c["unacceptable"])]
            for kind, c in counts.items()]
    total = Counter()
    for c in counts.values():
        total.update(c)
    rows.append(["total", str(sum(total[o] for o in outcomes)), *(str(total[o]) for o in outcomes),
                 str(total["unacceptable"])])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20, help="mutated files per (seed file, kind)")
    parser.add_argument("--folders", type=int, default=5, help="mutated study folders for find_studies")
    parser.add_argument("--tables", type=int, default=20, help="mutated tables per (reader, kind); 0 skips")
    parser.add_argument("--no-models", action="store_true", help="skip the damaged model directories")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pool = fuzzlib.ReaderPool()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            counts, failures = run_reads(Path(tmp), args.cases, pool)
            folder_counts, folder_failures = run_find_studies(Path(tmp), args.folders, pool)
            pool.close()
            table_counts, table_failures = run_tables(Path(tmp), args.tables) if args.tables else ({}, [])
            model_counts, model_failures = run_models(Path(tmp)) if not args.no_models else ({}, [])
    finally:
        pool.close()
    print(f"read_image: {args.cases} case(s) per seed file ({len(fuzzlib.REAL_FILES) + 1} files) and kind")
    print(table(counts, args.markdown))
    print(f"\nfind_studies over {args.folders} folder(s) of {len(fuzzlib.MUTATIONS) * 4} mutated files: "
          + ", ".join(f"{k} {v}" for k, v in folder_counts.items()))
    if table_counts:
        print(f"\ntables: {args.tables} case(s) per reader ({len(tablefuzz.TARGETS)}: "
              f"{', '.join(tablefuzz.TARGETS)}) and kind")
        print(table(table_counts, args.markdown))
    if model_counts:
        print(f"\nmodel directories: {len(modelfuzz.CASES)} damaged directories, each through both loaders")
        print(table(model_counts, args.markdown))
    everything = failures + folder_failures + table_failures + model_failures
    for name, kind, seed, answer in everything:
        print(f"FAIL {name} {kind} seed={seed}: {answer}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 1 if everything else 0


if __name__ == "__main__":
    sys.exit(main())
