"""Released-checkpoint import at the key table's own shapes (not a unit test: ~1.5 GB of tensors).

Builds a checkpoint with every key, shape and dtype of the released MaMA key table
(tests/inference/data/mama-released-checkpoint-keys.tsv): a real-shape ViT-B/14 with 4
registers at 518 px and a BioMedLM-wide GPT-2 (2560 wide, 20 heads, the table's 2 layers;
the vocabulary is a small tokenizer trained here, so `wte` is tokenizer + 6 rows, not
28,902). Imports it with `mama import-checkpoint` in bf16 and fp32, and compares the
imported model's embeddings and zero-shot probabilities with the independent forward of
the released semantics (tests/inference/released.py). Prints exit codes, seconds and the
minimum cosine of each output.

    python benchmarks/released_import.py [--dtypes bf16,fp32] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.inference import released  # noqa: E402

CAPTIONS = ["Screening mammography. Breast composition: heterogeneously dense; this may lower the sensitivity "
            "of mammography. Impression: BI-RADS Category 4: suspicious abnormality.",
            "Findings: an irregular high density mass. BI-RADS Category 1: negative."]
PROMPTS = ["BI-RADS Category 1: negative.", "BI-RADS Category 4: suspicious abnormality."]
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def _cos(a, b) -> float:
    return float(F.cosine_similarity(a.float().flatten(0, -2), b.float().flatten(0, -2), dim=-1).min())


def check(dtype_name: str, text_folder: Path, work: Path) -> dict:
    from mama_core.cli import main
    from mama_core.model.io import load_model_dir

    state = released.build_state(text_folder, DTYPES[dtype_name], scale={})
    ckpt = work / f"released-{dtype_name}.ckpt"
    torch.save(released.lightning_container(state), ckpt)
    started = time.perf_counter()
    code = main(["import-checkpoint", str(ckpt), str(work / f"model-{dtype_name}"), "--text-model", str(text_folder)])
    seconds = time.perf_counter() - started
    model, _ = load_model_dir(work / f"model-{dtype_name}")
    pixels = torch.rand(1, 1, 518, 518, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        image = model.encode_image(pixels)
        text = model.encode_text(model.tokenize(CAPTIONS))
        prompts = model.encode_prompts(PROMPTS)
        ref_global, ref_patches = released.reference_image(state, pixels.expand(-1, 3, -1, -1), heads=12)
        tok = released.released_tokenizer(text_folder)
        ref = released.reference_text(state, tok, CAPTIONS, heads=20)
        ref_prompts = released.reference_text(state, tok, PROMPTS, heads=20)["zero_shot"]
    ours = (model.scales()[0] * F.normalize(image["image_global"], dim=-1) @ F.normalize(prompts, dim=-1).T).softmax(-1)
    sentences = min(_cos(text["sentences"][b, :len(s)], s) for b, s in enumerate(ref["sentences"]))
    return {"dtype": dtype_name, "exit": code, "import_s": round(seconds, 1),
            "tensors": len(state), "parameters_M": round(sum(v.numel() for v in state.values()) / 1e6, 1),
            "cos_image_global": _cos(image["image_global"], ref_global),
            "cos_patch_local": _cos(image["image_patches"], ref_patches),
            "cos_text_global": _cos(text["text_global"], ref["text_global"]), "cos_sentence_local": sentences,
            "cos_zero_shot_text": _cos(prompts, ref_prompts),
            "cos_zero_shot_probs": _cos(ours, released.reference_zero_shot(state, ref_global, ref_prompts))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="bf16,fp32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mama-released-") as tmp:
        work = Path(tmp)
        text_folder = released.build_text_model(work / "biomedlm-shaped", width=2560, layers=2, heads=20)
        rows = [check(name, text_folder, work) for name in args.dtypes.split(",")]
    for row in rows:
        print(json.dumps(row) if args.json else ", ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
