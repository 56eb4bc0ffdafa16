"""Search index: incremental builds, ranked hits, model identity (moved from tests/inference)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from mama_core.errors import ConfigError, ModelError
from mama_core.inference import Predictor
from mama_core.search import build_index, search


def _run(folder, predictor, **kw):
    return list(build_index(folder, predictor, name="demo", **kw))[-1]


def test_index_is_incremental_and_search_ranks_studies(predictor, studies_dir, studies):
    first = _run(studies_dir, predictor)
    assert first.finished and first.total == 8 and first.encoded == 8
    assert _run(studies_dir, predictor).encoded == 0
    path = studies[0].images["LCC"]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    calls = []
    original = predictor.encode_decoded
    predictor.encode_decoded = lambda paths, images: (calls.extend(paths), original(paths, images))[1]
    assert _run(studies_dir, predictor).encoded == 1
    assert [str(p) for p in calls] == [str(path.resolve())]

    hits = search("There is a spiculated mass.", predictor, name="demo", top_k=5)
    assert {h.study_uid for h in hits} == {s.uid for s in studies}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    by_uid = {s.uid: s for s in studies}
    for h in hits:
        assert h.best_view in by_uid[h.study_uid].images
        assert -1 <= h.global_score <= 1 and -1 <= h.local_score <= 1


def test_search_scores_match_direct_computation(predictor, studies_dir, studies):
    _run(studies_dir, predictor)
    text = "Benign calcifications."
    hit = {h.study_uid: h for h in search(text, predictor, name="demo")}[studies[1].uid]
    t_global = predictor.embed_text([text])[0]
    t_local = predictor.sentence_embeddings([text])[0].numpy()
    g = max(float(predictor.image_features(p).image_global.numpy() @ t_global) for p in studies[1].images.values())
    assert hit.global_score == pytest.approx(g, abs=1e-5)
    from mama_core.inference.maps import content_patch_mask

    def exact_local(p):
        f = predictor.image_features(p)
        return float((f.image_patches.numpy() @ t_local)[content_patch_mask(f).reshape(-1)].max())

    loc = max(exact_local(p) for p in studies[1].images.values())
    # int8 with one scale per vector: |error| <= |q| |e| <= sqrt(D) / 254 (Cauchy-Schwarz)
    assert hit.local_score == pytest.approx(loc, abs=np.sqrt(len(t_local)) / 254)


def test_local_weight_sets_the_share_of_each_score(predictor, studies_dir):
    _run(studies_dir, predictor)
    text = "There is a spiculated mass."
    local = search(text, predictor, name="demo", local_weight=1.0)
    glob = search(text, predictor, name="demo", local_weight=0.0)
    assert all(h.score == pytest.approx(h.local_score) for h in local)
    assert all(h.score == pytest.approx(h.global_score) for h in glob)
    assert [h.score for h in local] == sorted((h.local_score for h in local), reverse=True)
    with pytest.raises(ConfigError, match="local_weight"):
        search(text, predictor, name="demo", local_weight=1.5)


def test_index_refuses_another_model_unless_rebuilt(predictor, studies_dir, tiny_model_dir, tmp_path):
    _run(studies_dir, predictor)
    other_dir = shutil.copytree(tiny_model_dir, tmp_path / "other")
    cfg = json.loads((other_dir / "config.json").read_text())
    cfg["trained_note"] = "a different model"
    (other_dir / "config.json").write_text(json.dumps(cfg))
    other = Predictor.load(other_dir, device="cpu")
    with pytest.raises(ModelError, match="--rebuild"):
        search("mass", other, name="demo")
    with pytest.raises(ModelError):
        _run(studies_dir, other)
    assert _run(studies_dir, other, rebuild=True).encoded == 8
    assert search("mass", other, name="demo")


def test_stop_flag_ends_indexing_with_what_was_saved(predictor, studies_dir):
    import threading

    from mama_core.search import index_dir
    from mama_core.search.ranking import open_snapshot

    stop = threading.Event()
    gen = build_index(studies_dir, predictor, name="partial", stop=stop)
    next(gen), next(gen)
    stop.set()
    last = list(gen)[-1]
    assert last.cancelled and not last.finished and last.encoded == 4  # one report word: cancelled
    assert open_snapshot(index_dir("partial")).size == 4  # the first study, published at the stop
    assert _run(studies_dir, predictor).encoded == 8  # a different index name: independent


def test_hits_carry_the_study_ood_verdict_from_the_stored_embeddings(predictor, studies_dir, studies, monkeypatch):
    """Search marks out-of-distribution studies from the index's global vectors, with the same
    verdict `predict` gives for the study (no image decoded again)."""
    from mama_core.inference import ood

    _run(studies_dir, predictor)
    embed = lambda s: np.stack([predictor.image_features(p).image_global.numpy() for p in s.images.values()])  # noqa: E731
    monkeypatch.setattr(predictor, "ood_stats", ood.fit_ood(embed(studies[0]), embed(studies[1]), k=2))
    hits = search("There is a mass.", predictor, name="demo")
    by_uid = {s.uid: s for s in studies}
    for hit in hits:
        expected = predictor.predict(by_uid[hit.study_uid]).ood
        assert hit.ood.score == pytest.approx(expected.score, abs=1e-5) and hit.ood.flagged == expected.flagged
        assert hit.to_json()["ood"]["status"] == expected.status
    assert len(hits) == len(studies)
