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

from tests.hardening import fuzzlib

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


def table(counts: dict[str, Counter], markdown: bool) -> str:
    head = ["kind", "cases", *OUTCOMES, "unacceptable"]
    rows = [[kind, str(sum(c[o] for o in OUTCOMES)), *(str(c[o]) for o in OUTCOMES), str(c["unacceptable"])]
            for kind, c in counts.items()]
    total = Counter()
    for c in counts.values():
        total.update(c)
    rows.append(["total", str(sum(total[o] for o in OUTCOMES)), *(str(total[o]) for o in OUTCOMES),
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
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pool = fuzzlib.ReaderPool()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            counts, failures = run_reads(Path(tmp), args.cases, pool)
            folder_counts, folder_failures = run_find_studies(Path(tmp), args.folders, pool)
    finally:
        pool.close()
    print(f"read_image: {args.cases} case(s) per seed file ({len(fuzzlib.REAL_FILES) + 1} files) and kind")
    print(table(counts, args.markdown))
    print(f"\nfind_studies over {args.folders} folder(s) of {len(fuzzlib.MUTATIONS) * 4} mutated files: "
          + ", ".join(f"{k} {v}" for k, v in folder_counts.items()))
    for name, kind, seed, answer in failures + folder_failures:
        print(f"FAIL {name} {kind} seed={seed}: {answer}")
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 1 if failures or folder_failures else 0


if __name__ == "__main__":
    sys.exit(main())
