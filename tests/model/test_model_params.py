"""AdamW parameter groups: no decay on biases, norms, temperatures, tokens, separator."""

from __future__ import annotations

from mama_core.model import TextConfig, build_model, optimizer_param_groups


def test_groups_split_weights_from_the_rest(gpt2_dir, make_config) -> None:
    model = build_model(make_config(TextConfig(path=str(gpt2_dir), lora_r=4)))
    decay, rest = optimizer_param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in rest["params"]}
    assert "image_global_head.weight" in decayed
    assert "vision.encoder.layer.0.attention.q_proj.weight" in decayed
    assert any("lora_A" in n for n in decayed)
    for name in ("image_global_head.bias", "vision.layernorm.weight", "logit_scale", "local_scale",
                 "text.sep_embedding", "vision.embeddings.cls_token",
                 "vision.embeddings.position_embeddings",
                 "vision.encoder.layer.0.layer_scale1.lambda1"):
        assert name in kept, name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decayed | kept == trainable and not decayed & kept
