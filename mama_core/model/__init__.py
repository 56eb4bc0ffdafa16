"""The MaMA model: DINOv2 vision encoder, Hugging Face text encoder + LoRA, heads.

Public names follow docs/architecture.md "Model".
"""

from mama_core.model.config import ModelConfig, TextConfig, VisionConfig
from mama_core.model.io import load_model_dir, read_model_info, save_model_dir
from mama_core.model.mama import MamaModel, build_model
from mama_core.model.params import optimizer_param_groups
from mama_core.model.text import SEPARATOR_TOKEN, split_caption
from mama_core.model.vision import hub_to_transformers

__all__ = [
    "ModelConfig", "TextConfig", "VisionConfig", "MamaModel", "build_model",
    "save_model_dir", "load_model_dir", "read_model_info", "optimizer_param_groups",
    "SEPARATOR_TOKEN", "split_caption", "hub_to_transformers",
]
