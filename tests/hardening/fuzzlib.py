"""Mutations of DICOM files and a time- and memory-bounded reader process, shared by the
fuzz tests and `fuzz_report.py`.

Every mutation is a pure function of (seed file bytes, random.Random), so a failing case
is reproduced from (seed file, kind, integer seed) alone.
"""

from __future__ import annotations

import io
import json
import os
import random
import selectors
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("read_worker.py")
TIME_LIMIT_S = 10.0
MEMORY_LIMIT = 3 * 2**30
REAL_FILES = ("RG1_UNCI.dcm", "RG3_J2KI.dcm", "CT_small.dcm", "MR_small.dcm")
# VRs with a 4-byte length field in explicit VR (PS3.5 7.1.2); the rest have 2 bytes.
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
HUGE_DIMS = (0, 1, 2, 32768, 65534, 65535)
HUGE_FRAMES = ("0", "1", "65535", "2147483647", "-1", "abc", "")


# --------------------------------------------------------------------------- seed files


def synthetic_dir(tmp: Path) -> Path:
    """One synthetic four-view MG study (rows=256), generated once per `tmp`."""
    from mama_core.synthetic import generate_studies

    out = tmp / "synthetic-seed"
    if not out.exists():
        generate_studies(out, 1, seed=3, rows=256)
    return out


def seed_files(tmp: Path) -> dict[str, bytes]:
    """The real pydicom-data / pydicom files plus one synthetic MG image."""
    from pydicom.data import get_testdata_file

    seeds = {name: Path(get_testdata_file(name, download=False)).read_bytes() for name in REAL_FILES}
    seeds["synthetic_MG.dcm"] = sorted(synthetic_dir(tmp).rglob("*.dcm"))[0].read_bytes()
    return seeds


# --------------------------------------------------------------------------- mutations


def _dataset(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


def length_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the length field of every top-level element still in raw form."""
    ds = _dataset(data)
    fields = []
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if not isinstance(raw, RawDataElement) or raw.value_tell is None:
            continue
        size = 4 if raw.is_implicit_VR or raw.VR in _LONG_VRS else 2
        fields.append((raw.value_tell - size, size))
    return fields


def bit_flip(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.choice((1, 2, 8, 64))):
        pos = rnd.randrange(len(buf))
        buf[pos] ^= 1 << rnd.randrange(8)
    return bytes(buf)


def truncate(data: bytes, rnd: random.Random) -> bytes:
    # Half the cuts land in the first 2 KiB, where the header lives.
    end = rnd.randrange(min(len(data), 2048)) if rnd.random() < 0.5 else rnd.randrange(len(data))
    return data[:end]


def header_bytes(data: bytes, rnd: random.Random) -> bytes:
    """Overwrite a few bytes between the preamble and the pixel data with random values."""
    buf = bytearray(data)
    stop = min(len(buf), _pixel_offset(data) or 2048)
    for _ in range(rnd.choice((1, 4, 16))):
        start = rnd.randrange(128, max(129, stop))
        span = rnd.choice((1, 2, 4))
        buf[start:start + span] = bytes(rnd.randrange(256) for _ in range(span))
    return bytes(buf[: len(data)])


def _pixel_offset(data: bytes) -> int | None:
    for tag in (b"\xe0\x7f\x10\x00",):
        pos = data.rfind(tag)
        if pos > 0:
            return pos
    return None


def _set_length(data: bytes, rnd: random.Random, value_of: Callable[[int], int]) -> bytes:
    fields = length_fields(data)
    if not fields:
        return data
    offset, size = rnd.choice(fields)
    buf = bytearray(data)
    value = value_of(size) & (0xFFFF if size == 2 else 0xFFFFFFFF)
    buf[offset:offset + size] = value.to_bytes(size, "little")
    return bytes(buf)


def element_length(data: bytes, rnd: random.Random) -> bytes:
    """One element declares a wrong (random, off-by-a-few, zero or odd) length."""
    choices = (lambda s: rnd.randrange(1 << (8 * s)), lambda s: rnd.randrange(0, 16), lambda s: rnd.choice((0, 1, 3)))
    return _set_length(data, rnd, lambda s: rnd.choice(choices)(s))


def huge_length(data: bytes, rnd: random.Random) -> bytes:
    """One element declares 0xFFFFFFF0 bytes (2-byte fields: 0xFFFF)."""
    return _set_length(data, rnd, lambda s: 0xFFFFFFF0 if s == 4 else 0xFFFF)


def huge_dims(data: bytes, rnd: random.Random) -> bytes:
    """Rows / Columns / NumberOfFrames set to huge or degenerate values; pixel data kept short."""
    ds = _dataset(data)
    raw: dict[str, str] = {}
    for keyword in rnd.sample(["Rows", "Columns", "NumberOfFrames"], rnd.randint(1, 3)):
        if keyword == "NumberOfFrames":
            raw[keyword] = rnd.choice(HUGE_FRAMES)
        else:
            setattr(ds, keyword, rnd.choice(HUGE_DIMS))
    return _save(ds, raw)


def pixel_module(data: bytes, rnd: random.Random) -> bytes:
    """Inconsistent pixel description: bits, sign, samples, photometric interpretation,
    unusable rescale and window values (text values may be invalid for their VR)."""
    ds = _dataset(data)
    edits = {
        "BitsAllocated": lambda: rnd.choice((0, 1, 7, 8, 16, 32, 64)),
        "BitsStored": lambda: rnd.choice((0, 1, 8, 12, 16, 17, 40)),
        "HighBit": lambda: rnd.choice((0, 7, 11, 15, 31)),
        "PixelRepresentation": lambda: rnd.choice((0, 1, 2)),
        "SamplesPerPixel": lambda: rnd.choice((0, 1, 3, 4)),
        "PhotometricInterpretation": lambda: rnd.choice(("MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "", "XYZ")),
        "RescaleSlope": lambda: rnd.choice(("0", "-1", "1e308", "nan", "abc")),
        "WindowWidth": lambda: rnd.choice(("0", "-5", "1e-30", "nan", "inf")),
    }
    raw: dict[str, str] = {}
    for keyword in rnd.sample(sorted(edits), rnd.randint(1, 3)):
        value = edits[keyword]()
        if isinstance(value, str) and keyword in _TEXT_NUMBERS:
            raw[keyword] = value
        else:
            setattr(ds, keyword, value)
    return _save(ds, raw)


# Numbers stored as text (IS/DS): written through a placeholder, then patched in the bytes,
# so that values pydicom would refuse ("abc", "nan") still reach the reader.
_TEXT_NUMBERS = {"NumberOfFrames": "IS", "RescaleSlope": "DS", "WindowWidth": "DS"}


def _save(ds: pydicom.Dataset, raw: dict[str, str] | None = None) -> bytes:
    raw = raw or {}
    markers = {}
    for i, (keyword, value) in enumerate(raw.items()):
        width = max(10, len(value) + len(value) % 2)
        marker = f"{i}".rjust(width - 1, "9") + "7"  # a unique, valid IS/DS literal
        markers[marker] = value.ljust(width)
        setattr(ds, keyword, marker)
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=False)
    except Exception:  # pydicom refused to write this combination: nothing to test
        return b""
    data = buf.getvalue()
    for marker, value in markers.items():
        data = data.replace(marker.encode(), value.encode(), 1)
    return data


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "bit_flip": bit_flip,
    "truncate": truncate,
    "header_bytes": header_bytes,
    "element_length": element_length,
    "huge_length": huge_length,
    "huge_dims": huge_dims,
    "pixel_module": pixel_module,
}


def mutate(data: bytes, kind: str, seed: int) -> bytes:
    return MUTATIONS[kind](data, random.Random(seed))


# --------------------------------------------------------------------------- bounded reader


class ReaderPool:
    """One reader child at a time; a read over `timeout` seconds is a hang (the child is
    killed and replaced), a dead child a crash. Children run under RLIMIT_AS."""

    def __init__(self, timeout: float = TIME_LIMIT_S, memory: int = MEMORY_LIMIT, startup_s: float = 120.0,
                 models: bool = False):
        self.models = models
        self.timeout, self.memory, self.startup_s = timeout, memory, startup_s
        self.proc: subprocess.Popen | None = None
        self.selector: selectors.BaseSelector | None = None

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), str(self.memory), *(["--models"] if self.models else [])], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        ready = self._answer(self.startup_s)
        if not ready or not ready.get("ready"):
            raise RuntimeError(f"reader worker did not start: {ready}")

    def _answer(self, timeout: float) -> dict | None:
        assert self.proc is not None and self.selector is not None
        if not self.selector.select(timeout):
            return None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else {"outcome": "crash", "returncode": self.proc.wait()}

    def run(self, op: str, path: str | Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None
        self.proc.stdin.write(json.dumps({"op": op, "path": str(path)}) + "\n")
        self.proc.stdin.flush()
        answer = self._answer(self.timeout)
        if answer is None:
            self.close()
            return {"outcome": "hang", "message": f"no answer within {self.timeout:.0f} s"}
        if answer.get("outcome") == "crash":
            self.close()
        return answer

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self.selector is not None:
            self.selector.close()
        self.proc, self.selector = None, None


def acceptable(answer: dict) -> bool:
    """The contract: a readable image with finite pixels in [0, 1], or a MamaError that
    names the file. Everything else (another exception, a hang, a crash, MemoryError) fails."""
    if answer["outcome"] == "ok":
        return "finite" not in answer or (answer["finite"] and answer["in_range"])
    return answer["outcome"] == "mama_error" and bool(answer.get("names_file"))
