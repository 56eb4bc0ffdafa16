"""Mutations of CSV tables (EMBED metadata/clinical, RSNA train.csv, generic, labels) and the
loaders they go through; shared by test_fuzz_tables.py and fuzz_report.py."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

from mama_core.errors import MamaError

RSNA = ("site_id,patient_id,image_id,laterality,view,age,cancer,biopsy,density,BIRADS\n"
        "1,10006,462822612,L,CC,61,0,0,B,1\n1,10006,1459541791,L,MLO,61,0,0,B,1\n"
        "2,10011,220375232,R,CC,55,1,1,C,0\n2,10011,270344397,R,MLO,55,1,1,,\n")
GENERIC = ("path,patient_id,study_id,laterality,view,birads,density,cancer,StudyDescription\n"
           "a/LCC.dcm,p1,s1,L,CC,2,3,0,MG Screening Bilateral\nb/RMLO.dcm,p2,s2,right,mlo,4,1,1,\n")
BAD_VALUES = ("", "abc", "-1", "1e9", "7", "9", "Q", "X", "2", "NaN", "None", "0x10", "4.5", "\t", "B", "é", "\u202e")


def drop_column(text: str, rnd: random.Random) -> str:
    rows = [line.split(",") for line in text.splitlines()]
    col = rnd.randrange(len(rows[0]))
    return "\n".join(",".join(c for i, c in enumerate(r) if i != col) for r in rows) + "\n"


def wrong_values(text: str, rnd: random.Random) -> str:
    """Random cells replaced by wrong types and unknown codes (BI-RADS 'Q', density 9, ...)."""
    rows = [line.split(",") for line in text.splitlines()]
    for _ in range(rnd.randint(1, 6)):
        r = rnd.randrange(1, len(rows)) if len(rows) > 1 else 0
        if rows[r]:
            rows[r][rnd.randrange(len(rows[r]))] = rnd.choice(BAD_VALUES)
    return "\n".join(",".join(r) for r in rows) + "\n"


def ragged(text: str, rnd: random.Random) -> str:
    rows = [line.split(",") for line in text.splitlines()]
    for _ in range(rnd.randint(1, 3)):
        row = rows[rnd.randrange(len(rows))]
        if rnd.random() < 0.5 and row:
            del row[rnd.randrange(len(row)):]
        else:
            row.extend(rnd.choice(BAD_VALUES) for _ in range(rnd.randint(1, 5)))
    return "\n".join(",".join(r) for r in rows) + "\n"


def huge_field(text: str, rnd: random.Random) -> str:
    lines = text.splitlines()
    r = rnd.randrange(len(lines))
    big = rnd.choice(("x" * 200_000, '"' + "y" * 300_000 + '"', "z," * 50_000))
    lines[r] = lines[r] + "," + big if rnd.random() < 0.5 else big + "," + lines[r]
    return "\n".join(lines) + "\n"


def quoting(text: str, rnd: random.Random) -> str:
    pos = rnd.randrange(len(text))
    return text[:pos] + rnd.choice(('"', '"\n', '""', "\r", "\r\n\r\n", "\\")) + text[pos:]


TEXT_MUTATIONS: dict[str, Callable[[str, random.Random], str]] = {
    "drop_column": drop_column, "wrong_values": wrong_values, "ragged": ragged,
    "huge_field": huge_field, "quoting": quoting,
}


def non_utf8(data: bytes, rnd: random.Random) -> bytes:
    pos = rnd.randrange(len(data) + 1)
    return data[:pos] + rnd.choice((b"\xff", b"\xc3\x28", b"\x80\x80", b"\xed\xa0\x80")) + data[pos:]


def nul_bytes(data: bytes, rnd: random.Random) -> bytes:
    pos = rnd.randrange(len(data) + 1)
    return data[:pos] + b"\x00" * rnd.randint(1, 4) + data[pos:]


def empty(data: bytes, rnd: random.Random) -> bytes:
    header = data.split(b"\n", 1)[0]
    return rnd.choice((b"", b"\n", b"\n\n\n", b"\xef\xbb\xbf", header, header + b"\n", b" , ,\n"))


def random_bytes(data: bytes, rnd: random.Random) -> bytes:
    return bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 2000)))


def bit_flip(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        if buf:
            buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
    return bytes(buf)


BYTE_MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "non_utf8": non_utf8, "nul_bytes": nul_bytes, "empty": empty, "random_bytes": random_bytes, "bit_flip": bit_flip,
}
KINDS = (*TEXT_MUTATIONS, *BYTE_MUTATIONS)


def mutate_table(data: bytes, kind: str, seed: int) -> bytes:
    rnd = random.Random(seed)
    if kind in TEXT_MUTATIONS:
        return TEXT_MUTATIONS[kind](data.decode("utf-8"), rnd).encode("utf-8", "surrogatepass")
    return BYTE_MUTATIONS[kind](data, rnd)


# --------------------------------------------------------------------------- readers


def prepare(target: str, base: Path, synthetic: Path) -> tuple[Path, Callable[[], object]]:
    """A fresh case folder for one reader target: (file to mutate, call that reads it)."""
    from mama_core.data import load_embed, load_generic, load_records, load_rsna

    base.mkdir(parents=True)
    if target in ("embed_metadata", "embed_clinical"):
        for name in ("metadata.csv", "clinical.csv"):
            shutil.copy(synthetic / name, base / name)
        victim = base / ("metadata.csv" if target == "embed_metadata" else "clinical.csv")
        return victim, lambda: (load_embed(base / "metadata.csv", base / "clinical.csv"), load_records(base))
    if target == "rsna":
        victim = base / "train.csv"
        victim.write_text(RSNA)
        return victim, lambda: (load_rsna(victim), load_records(victim))
    if target == "generic":
        victim = base / "table.csv"
        victim.write_text(GENERIC)
        return victim, lambda: (load_generic(victim), load_records(victim))
    if target == "labels":
        study = next(p for p in synthetic.iterdir() if p.is_dir())
        uid = (synthetic / "metadata.csv").read_text().splitlines()[1].split(",")[8]
        victim = base / "labels.csv"
        victim.write_text(f"study_id,view_key,birads,density,cancer\n{uid},LCC,4,3,1\n{uid},,1,3,0\n{uid},R,2,,\n")
        return victim, lambda: load_records(study, labels=victim)
    raise ValueError(target)


TARGETS = ("embed_metadata", "embed_clinical", "rsna", "generic", "labels")


def outcome(call: Callable[[], object], victim: Path) -> tuple[str, str]:
    """('ok' | 'mama_error' | 'mama_error_unnamed' | 'other_error', detail)."""
    try:
        call()
    except MamaError as exc:
        where = Path(exc.path) if exc.path is not None else None
        named = where is not None and (where == victim.parent or victim.parent in where.parents)
        return ("mama_error" if named else "mama_error_unnamed"), str(exc)[:300]
    except Exception as exc:  # noqa: BLE001 - the finding
        return "other_error", f"{type(exc).__name__}: {exc}"[:300]
    return "ok", ""
