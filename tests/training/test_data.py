from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from mama_core.training.cache import ImageCache
from mama_core.training.config import AugmentConfig
from mama_core.training.data import PairDataset, StepBatchSampler, class_weights, collate_pairs, validation_batches


@pytest.fixture()
def dataset(records, cache_dir):
    return PairDataset(records, ImageCache(cache_dir, 56), AugmentConfig(), mask_prob=0.8, second_view_prob=0.5)


def test_second_view_comes_from_the_same_study(dataset, records):
    seen_other = 0
    for seed in range(40):
        item = dataset[(seed % len(records), seed)]
        first, second = records[item["index"]], records[item["second_index"]]
        assert first.study_id == second.study_id
        seen_other += item["index"] != item["second_index"]
        assert item["image"].shape == item["image2"].shape == (1, 56, 56)
        assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0  # normalised
    assert 0 < seen_other < 40


def test_second_view_probability_is_about_one_half(dataset):
    n = 4000
    other = sum(dataset.second_index(0, np.random.default_rng(s)) != 0 for s in range(n))
    # Binomial(4000, 0.5): sd = 32; 5 sd either side.
    assert abs(other - n / 2) < 160


def test_second_view_probability_is_configurable(records, cache_dir):
    never = PairDataset(records, ImageCache(cache_dir, 56), second_view_prob=0.0)
    always = PairDataset(records, ImageCache(cache_dir, 56), second_view_prob=1.0)
    assert all(never.second_index(2, np.random.default_rng(s)) == 2 for s in range(50))
    assert all(always.second_index(2, np.random.default_rng(s)) != 2 for s in range(50))


def test_captions_are_masked_per_sample_in_training_only(records, cache_dir, dataset):
    captions = {dataset[(0, seed)]["caption"] for seed in range(12)}
    assert len(captions) > 1  # rebuilt per sample with fresh masking
    val = PairDataset(records, ImageCache(cache_dir, 56), train=False)
    assert len({val[(0, seed)]["caption"] for seed in range(6)}) == 1
    item = val[0]
    assert torch.equal(item["image"], item["image2"]) or item["second_index"] != 0  # no augmentation


def test_same_seed_same_sample(dataset):
    a, b = dataset[(3, 99)], dataset[(3, 99)]
    assert a["caption"] == b["caption"] and torch.equal(a["image"], b["image"]) and torch.equal(a["image2"], b["image2"])


def test_collate(dataset):
    batch = collate_pairs([dataset[(i, i)] for i in range(3)])
    assert batch["images"].shape == (3, 1, 56, 56) and len(batch["captions"]) == 3


def test_sampler_is_a_function_of_the_step():
    a = StepBatchSampler(10, 4, seed=5)
    resumed = StepBatchSampler(10, 4, seed=5, start_batch=3)
    it = iter(a)
    first_five = [next(it) for _ in range(5)]
    assert next(iter(resumed)) == first_five[3]
    # Epochs are permutations: the first 10 positions cover every index once.
    flat = [i for batch in first_five for i, _ in batch]
    assert sorted(flat[:10]) == list(range(10))
    assert len({s for batch in first_five for _, s in batch}) == 20  # distinct sample seeds


def test_sampler_shards_ranks_disjointly():
    r0 = StepBatchSampler(8, 2, seed=1, rank=0, world_size=2)
    r1 = StepBatchSampler(8, 2, seed=1, rank=1, world_size=2)
    epoch0 = [i for k in range(2) for i, _ in r0.batch(k)] + [i for k in range(2) for i, _ in r1.batch(k)]
    assert sorted(epoch0) == list(range(8))


def test_class_balanced_sampling():
    class R:
        def __init__(self, birads):
            self.birads = birads

    recs = [R(1)] * 18 + [R(4)] * 2
    weights = class_weights(recs, "birads")
    sampler = StepBatchSampler(len(recs), 10, seed=0, weights=weights)
    counts = Counter(recs[i].birads for k in range(100) for i, _ in sampler.batch(k))
    assert 0.4 < counts[4] / sum(counts.values()) < 0.6  # 10 % without balancing


def test_validation_batches_are_even_across_ranks():
    b0 = validation_batches(9, 2, 0, 2, 10)
    b1 = validation_batches(9, 2, 1, 2, 10)
    assert [len(b) for b in b0] == [len(b) for b in b1]
    assert not set(sum(b0, [])) & set(sum(b1, []))
