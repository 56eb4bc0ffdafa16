"""A child process that reads files with the engine and reports the outcome as JSON lines.

Run by `fuzzlib.ReaderPool` (never imported by the tests): the address space is capped with
RLIMIT_AS before anything is read, so a file that makes a reader allocate gigabytes ends
as a MemoryError here (reported as a failure), not as a swapping test machine. A request
is one JSON line {"op": ..., "path": ...}; the answer one JSON line (see `classify`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

LIMIT_BYTES = int(sys.argv[1]) if len(sys.argv) > 1 else 3 * 2**30


def cap_memory(limit: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def read_image_op(path: str) -> dict:
    import numpy as np

    from mama_core.dicom import read_image

    image = read_image(path)
    pixels = image.pixels
    finite = bool(np.isfinite(pixels).all())
    in_range = bool(finite and pixels.size and pixels.min() >= 0.0 and pixels.max() <= 1.0)
    return {"shape": list(pixels.shape), "finite": finite, "in_range": in_range,
            "dtype": str(pixels.dtype)}


def find_studies_op(path: str) -> dict:
    from mama_core.dicom import find_studies

    report: list = []
    studies = find_studies(path, report)
    return {"studies": len(studies), "images": sum(len(s.images) for s in studies), "skipped": len(report)}


def read_header_op(path: str) -> dict:
    from mama_core.dicom import tags_for_display

    return {"rows": len(tags_for_display(path))}


def load_model_dir_op(path: str) -> dict:
    from mama_core.model.io import load_model_dir

    model, info = load_model_dir(path)
    return {"params": sum(p.numel() for p in model.parameters())}


def predictor_load_op(path: str) -> dict:
    from mama_core.inference import Predictor

    predictor = Predictor.load(path, device="cpu")
    return {"method": predictor.method}


OPS = {"read_image": read_image_op, "find_studies": find_studies_op, "tags": read_header_op,
       "load_model_dir": load_model_dir_op, "predictor_load": predictor_load_op}


def classify(op: str, path: str) -> dict:
    from mama_core.errors import MamaError

    try:
        detail = OPS[op](path)
    except MamaError as exc:
        return {"outcome": "mama_error", "type": type(exc).__name__, "message": str(exc)[:500],
                "names_file": str(Path(path)) in str(exc) or (exc.path is not None and str(exc.path) == path)}
    except MemoryError:
        return {"outcome": "memory_error", "type": "MemoryError", "message": "address-space limit reached"}
    except BaseException as exc:  # noqa: BLE001 - any other exception is the finding
        return {"outcome": "other_error", "type": type(exc).__name__, "message": str(exc)[:500]}
    return {"outcome": "ok", **detail}


def main() -> None:
    cap_memory(LIMIT_BYTES)
    import mama_core.dicom  # noqa: F401  (import before the first request: timings are per file)

    if "--models" in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import mama_core.inference  # noqa: F401
        import mama_core.model.io  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(classify(request["op"], request["path"])), flush=True)


if __name__ == "__main__":
    main()
