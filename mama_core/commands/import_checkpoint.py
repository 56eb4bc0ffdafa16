"""`mama import-checkpoint FILE OUT`: a checkpoint of the released MaMA code (Lightning .ckpt or
the same state dict as .safetensors) or a torch.hub DINOv2 state dict -> a model directory
(weights-only loading: nothing in the file is executed). docs/inference.md "Importing checkpoints"."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "import-checkpoint"
HELP = "convert a released MaMA checkpoint or a torch.hub DINOv2 state dict into a model directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="checkpoint (.ckpt / .pth / .pt / .safetensors)")
    parser.add_argument("out", help="model directory to write")
    parser.add_argument("--text-model", default="minilm",
                        help="local Hugging Face folder of the text model the checkpoint was trained from: for a "
                             "released MaMA checkpoint a GPT-2-family folder (BioMedLM: config.json, weights, "
                             "tokenizer) whose weights the checkpoint's frozen text base must equal "
                             "(default: minilm, only meaningful for a ViT-only file)")
    parser.add_argument("--num-heads", type=int, default=None, help="ViT attention heads (default: hidden size / 64)")
    parser.add_argument("--image-size", type=int, default=None, help="input size (default: from the position embeddings)")
    parser.add_argument("--embed-dim", type=int, default=512, help="embedding size when the checkpoint has no heads")
    parser.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha used in training (not stored in weights)")


def run(args: argparse.Namespace) -> int:
    from mama_core.checkpoint_import import import_checkpoint

    with JobProgress(f"importing {args.file}", enabled=not args.json):
        report = import_checkpoint(args.file, args.out, text_path=args.text_model, num_heads=args.num_heads,
                                   image_size=args.image_size, embed_dim=args.embed_dim, lora_alpha=args.lora_alpha)
    if args.json:
        print_json(report.to_json())
        return 0
    print(f"imported {report.kind} checkpoint: {report.loaded} tensors -> {report.out_dir}")
    print("vision: " + ", ".join(f"{k}={v}" for k, v in report.vision.items()))
    for part in report.fresh:
        print(f"untrained (train or fine-tune before use): {part}")
    for note in report.notes:
        print(f"note: {note}")
    for key, value in report.modes.items():
        print(f"released-code mode: {key} = {value}")
    return 0
