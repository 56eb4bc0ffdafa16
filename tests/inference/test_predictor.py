"""Predictor: probabilities, aggregation, probe heads, caching and thread safety."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from mama_core.errors import ModelError
from mama_core.inference import Predictor, ProbeHead, save_head
from mama_core.inference.aggregate import aggregate
from mama_core.inference.types import ViewPrediction


def _is_prob(p, n):
    return p.shape == (n,) and np.all(p >= 0) and np.isclose(p.sum(), 1.0)


def test_predict_gives_probability_vectors_per_view_side_and_study(predictor, studies):
    study = studies[0]
    pred = predictor.predict(study)
    assert set(pred.views) == set(study.images) == {"LCC", "RCC", "LMLO", "RMLO"}
    assert set(pred.sides) == {"L", "R"}
    for v in list(pred.views.values()) + list(pred.sides.values()):
        assert _is_prob(v.birads, 7) and _is_prob(v.density, 4)
    assert _is_prob(pred.birads, 7) and _is_prob(pred.density, 4)
    assert pred.method == "zero-shot" and pred.study_uid == study.uid
    doc = json.loads(json.dumps(pred.to_json()))
    assert len(doc["birads"]) == 7 and len(doc["views"]["LCC"]["density"]) == 4


def test_zero_shot_is_softmax_of_scaled_cosines(predictor, studies):
    import torch
    from mama_core.captions import zero_shot_prompts

    path = studies[0].images["LCC"]
    feats = predictor.image_features(path)
    model = predictor.model
    with torch.no_grad():
        text = model.encode_text(model.tokenize(zero_shot_prompts("density")))["text_global"]
        logits = model.scales()[0] * torch.nn.functional.normalize(text, dim=-1) @ feats.image_global
    expected = torch.softmax(logits, 0).numpy()
    assert np.allclose(predictor.predict_view("LCC", path).density, expected, atol=1e-5)


def test_aggregation_rules():
    def vp(key, b, d):
        return ViewPrediction(key, np.asarray(b, float), np.asarray(d, float))

    low = [0, 0.9, 0.1, 0, 0, 0, 0]  # mostly negative
    high = [0, 0.1, 0.1, 0, 0.8, 0, 0]  # suspicious
    views = {"LCC": vp("LCC", low, [1, 0, 0, 0]), "LMLO": vp("LMLO", low, [0, 1, 0, 0]),
             "RCC": vp("RCC", high, [0, 0, 1, 0]), "RMLO": vp("RMLO", low, [0, 0, 0, 1])}
    pred = aggregate("s", views, "zero-shot", "m")
    assert np.allclose(pred.density, [0.25, 0.25, 0.25, 0.25])
    assert np.allclose(pred.sides["R"].birads, (np.array(high) + low) / 2)
    assert np.allclose(pred.birads, pred.sides["R"].birads)  # the worse side wins
    assert np.allclose(pred.sides["L"].density, [0.5, 0.5, 0, 0])


def test_probe_heads_replace_zero_shot(model_copy, studies):
    rng = np.random.default_rng(0)
    for task, n in (("birads", 7), ("density", 4)):
        save_head(model_copy, ProbeHead(task, list(range(n)), rng.normal(size=(n, 16)).astype(np.float32),
                                        rng.normal(size=n).astype(np.float32)))
    p = Predictor.load(model_copy, device="cpu")
    assert p.method == "probe"
    path = studies[0].images["RCC"]
    feats = p.image_features(path)
    z = np.asarray(p.heads["density"].weight) @ feats.raw_global.numpy() + p.heads["density"].bias
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert np.allclose(p.predict_view("RCC", path).density, expected, atol=1e-6)
    assert p.predict(studies[0]).method == "probe"


def test_demo_missing_says_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMA_RESOURCES", str(tmp_path))
    with pytest.raises(ModelError, match="demo model is not built yet"):
        Predictor.load("demo")
    with pytest.raises(ModelError, match="not a model directory"):
        Predictor.load(tmp_path)


def test_second_query_does_not_rerun_the_vision_encoder(predictor, studies):
    calls = []
    original = predictor.model.encode_image

    def counting(x):
        calls.append(x.shape[0])
        return original(x)

    predictor.model.encode_image = counting
    predictor.similarity_maps(studies[0], ["There is a mass."])
    assert sum(calls) == 4 and len(calls) == 1  # the four views in one batched forward
    predictor.similarity_maps(studies[0], ["Calcifications are seen."])
    predictor.predict(studies[0])
    assert sum(calls) == 4  # only text forwards for a new sentence
    path = studies[0].images["LCC"]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a changed file is re-encoded
    predictor.similarity_maps(studies[0], ["There is a mass."])
    assert calls[1:] == [1]


def test_two_threads_querying_get_the_single_thread_answer(predictor, studies):
    sentences = [["There is a mass."], ["Calcifications are seen."]]
    reference = [predictor.similarity_maps(studies[1], s).maps["LMLO"] for s in sentences]
    predictor.cache.clear()
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = predictor.similarity_maps(studies[1], sentences[i]).maps["LMLO"]
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i in range(2):
        assert np.allclose(results[i], reference[i], atol=1e-6)
