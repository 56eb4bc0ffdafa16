"""Random-weight stand-ins for the paper's encoders, built locally (nothing downloaded).

The paper trains a DINOv2 ViT-B/14 with 4 registers at 518 px (random init needs only its
config, `VisionConfig()` defaults) and BioMedLM, a GPT-2 of 2,560 width, 32 layers and 20
heads over a 28,896-token vocabulary (docs/method.md §1.3). `write_random_gpt2` writes a
local Hugging Face folder of that shape — config, random safetensors weights and a byte-level
BPE tokenizer whose size equals the model's vocabulary — so that the training code loads it
exactly as it would load the real BioMedLM folder. Tests, benchmarks/train_step.py
--paper-shapes and the GPU suite use it; widths can be shrunk for quick checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

# BioMedLM (stanford-crfm/BioMedLM) as published: GPT-2 architecture, 2.7 B parameters.
BIOMEDLM_VOCAB = 28_896
EOS_TOKEN = "<|endoftext|>"
_SHARD_BYTES = 1 << 30  # write the weights in ~1 GiB safetensors shards (bounded memory)


@dataclass(frozen=True)
class GPT2Shape:
    n_embd: int = 2560
    n_layer: int = 32
    n_head: int = 20
    vocab_size: int = BIOMEDLM_VOCAB
    n_positions: int = 1024


BIOMEDLM = GPT2Shape()


def _corpus(n: int = 400) -> list[str]:
    """Captions in the project's own structured style, to train realistic BPE merges."""
    import random

    from mama_core.captions import build_caption

    rng = random.Random(0)
    rows = []
    for i in range(n):
        record = {"StudyDescription": rng.choice(["MG Screening Bilateral", "MG Diagnostic Left"]),
                  "age_at_study": 40 + i % 45, "RACE_DESC": rng.choice(["White", "Asian", "African American"]),
                  "ETHNIC_GROUP_DESC": "Non-Hispanic", "FinalImageType": "2D",
                  "ImageLateralityFinal": rng.choice("LR"), "ViewPosition": rng.choice(["CC", "MLO"]),
                  "tissueden": 1 + i % 4, "asses": rng.choice("NBAPSM"), "massshape": rng.choice("ORIL"),
                  "massdens": "="}
        rows.append(build_caption(record, mask_prob=0.5, rng=rng))
    return rows


def write_tokenizer(folder: Path, vocab_size: int) -> int:
    """A byte-level BPE tokenizer of exactly `vocab_size` entries: merges learnt from
    caption text, then reserved special tokens up to the size (a real vocabulary this large
    needs a large corpus; the reserved ones never occur in text). Returns the eos id."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    missing = vocab_size - tok.get_vocab_size()
    if missing < 0:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the byte-level alphabet")
    tok.add_special_tokens([AddedToken(f"<|reserved{i}|>", special=True, normalized=False)
                            for i in range(missing)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN)
    if len(fast) != vocab_size:
        raise AssertionError(f"tokenizer has {len(fast)} entries, expected {vocab_size}")
    fast.save_pretrained(folder)
    return fast.convert_tokens_to_ids(EOS_TOKEN)


def _random_tensor(name: str, shape: torch.Size, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    """GPT-2's own initialisation: N(0, 0.02) matrices, unit norm gains, zero biases."""
    if name.endswith("bias"):
        return torch.zeros(shape, dtype=dtype)
    if ".ln_" in name or name.startswith("ln_"):
        return torch.ones(shape, dtype=dtype)
    return (torch.randn(shape, generator=g, dtype=torch.float32) * 0.02).to(dtype)


def _write_shards(folder: Path, shapes: dict[str, torch.Size], dtype: torch.dtype, seed: int) -> None:
    """Random weights as sharded safetensors + index, one shard in memory at a time."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = shape.numel() * dtype.itemsize
        if shards[-1] and size + nbytes > _SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    weight_map, total = {}, 0
    for i, names in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {n: _random_tensor(n, shapes[n], dtype, g) for n in names}
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")


def write_random_gpt2(folder: str | Path, shape: GPT2Shape = BIOMEDLM, dtype: torch.dtype = torch.bfloat16,
                      seed: int = 0) -> Path:
    """A local Hugging Face GPT-2 folder of `shape` with random weights stored as `dtype`
    and a tokenizer of exactly `shape.vocab_size` entries. The model is laid out on the meta
    device, so no full-size copy is ever in memory (peak about one 1 GiB shard)."""
    from transformers import GPT2Config, GPT2Model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    eos = write_tokenizer(folder, shape.vocab_size)
    cfg = GPT2Config(**asdict(shape), bos_token_id=eos, eos_token_id=eos, architectures=["GPT2Model"])
    cfg.dtype = dtype
    cfg.save_pretrained(folder)
    with torch.device("meta"):
        layout = GPT2Model(cfg)
    shapes = {k: v.shape for k, v in layout.state_dict().items()}
    _write_shards(folder, shapes, dtype, seed)
    return folder


def paper_model_overrides(text_dir: str | Path) -> list[str]:
    """`--set` overrides that point resources/configs/mama-b14.yaml at a local text folder
    (its ViT-B/14 reg4 at 518 px is already random-init: `model.vision.source: config`)."""
    return [f"model.text.path={Path(text_dir)}"]
