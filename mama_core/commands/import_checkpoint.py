"""`mama import-checkpoint FILE OUT`: a MaMA Lightning checkpoint or a torch.hub DINOv2 state
dict -> a model directory (weights-only loading: nothing in the file is executed)."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json
from mama_core.commands._progress import JobProgress

NAME = "import-checkpoint"
HELP = "convert a released MaMA checkpoint or a torch.hub DINOv2 state dict into a model directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="checkpoint (.ckpt / .pth / .pt)")
    parser.add_argument("out", help="model directory to write")
    parser.add_argument("--text-model", default="minilm",
                        help="local Hugging Face text model the checkpoint was trained from (default: minilm)")
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
    return 0
