"""Training pairs (docs/method.md §1.1): an image, a second view of the same study and the
first image's caption, rebuilt per sample with meta-information masking.

Reproducibility: every sample carries its own seed, derived from (run seed, rank, micro-batch
number, position in the batch). Captions, second-view choice and augmentations draw only
from generators seeded with it, so a batch is a pure function of its step — resuming at
step k replays exactly the batches an uninterrupted run would have seen, whatever the
number of DataLoader workers.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, WeightedRandomSampler, default_collate

from mama_core.captions import build_caption
from mama_core.optim import inverse_class_frequency
from mama_core.preprocess import normalise
from mama_core.training.augment import augment
from mama_core.training.cache import ImageCache
from mama_core.training.config import AugmentConfig


def sample_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from small integers (numpy SeedSequence hashing)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def study_mates(records: Sequence) -> list[list[int]]:
    """For each record, the indices of the *other* records of its study."""
    by_study: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_study[str(record.study_id)].append(i)
    return [[j for j in by_study[str(r.study_id)] if j != i] for i, r in enumerate(records)]


class PairDataset(Dataset):
    """Items are `(index, seed)` pairs (see `StepBatchSampler`); a bare int uses seed=index.

    Training (`train=True`): caption masked with `mask_prob`, second view from the study
    with `second_view_prob`, both views augmented independently. Validation: unmasked
    caption, no augmentation, the same second-view rule under the fixed per-index seed.
    """

    def __init__(self, records: Sequence, cache: ImageCache, augment_cfg: AugmentConfig | None = None,
                 mask_prob: float = 0.8, second_view_prob: float = 0.5, train: bool = True):
        self.records = list(records)
        self.cache = cache
        self.augment_cfg = augment_cfg or AugmentConfig()
        self.mask_prob = mask_prob if train else 0.0
        self.second_view_prob = second_view_prob
        self.train = train
        self.mates = study_mates(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def second_index(self, index: int, rng: np.random.Generator) -> int:
        """Another image of the study with probability p, else the same image."""
        coin, pick = rng.random(), rng.random()  # both always drawn: a stable stream
        mates = self.mates[index]
        if mates and coin < self.second_view_prob:
            return mates[min(int(pick * len(mates)), len(mates) - 1)]
        return index

    def view(self, index: int, g: torch.Generator) -> torch.Tensor:
        image = self.cache.load(self.records[index].path)
        if self.train:
            image = augment(image, self.augment_cfg, g)
        return normalise(image)

    def __getitem__(self, item: Any) -> dict[str, Any]:
        index, seed = item if isinstance(item, (tuple, list)) else (int(item), int(item))
        rng = np.random.default_rng(seed)
        g = torch.Generator().manual_seed(seed)
        record = self.records[index]
        caption = build_caption(record.meta, mask_prob=self.mask_prob, rng=rng)
        second = self.second_index(index, rng)
        return {"image": self.view(index, g), "image2": self.view(second, g), "caption": caption,
                "index": index, "second_index": second}


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
    # default_collate stacks straight into shared memory inside a DataLoader worker, which
    # saves copying each batch again when it is sent to the training process.
    return {
        "images": default_collate([it["image"] for it in items]),
        "images2": default_collate([it["image2"] for it in items]),
        "captions": [it["caption"] for it in items],
        "index": torch.tensor([it["index"] for it in items]),
        "second_index": torch.tensor([it["second_index"] for it in items]),
    }


def class_weights(records: Sequence, label: str) -> torch.Tensor:
    """Inverse class frequency per record (records without the label form their own class),
    for WeightedRandomSampler class balancing."""
    return torch.from_numpy(inverse_class_frequency([getattr(r, label) for r in records]))


class StepBatchSampler(Sampler):
    """An endless stream of micro-batches of `(index, seed)` items for one rank.

    Each epoch's order is this rank's share of a DistributedSampler permutation (seeded with
    `seed` and the epoch, identical on every rank), or a WeightedRandomSampler draw when
    class weights are given. Epochs are concatenated, so micro-batch k always covers stream
    positions [k*B, (k+1)*B): starting at `start_batch` resumes exactly.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 weights: torch.Tensor | None = None, start_batch: int = 0):
        if n < 1:
            raise ValueError("no training records")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.weights = weights
        self.start_batch = start_batch
        self.per_rank = math.ceil(n / world_size)  # equal on every rank (DistributedSampler pads)
        self._orders: OrderedDict[int, list[int]] = OrderedDict()

    def epoch_order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            self._orders[epoch] = self._make_order(epoch)
            while len(self._orders) > 2:
                self._orders.popitem(last=False)
        return self._orders[epoch]

    def _make_order(self, epoch: int) -> list[int]:
        if self.weights is not None:
            g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, self.rank, 1))
            return list(WeightedRandomSampler(self.weights, self.per_rank, replacement=True, generator=g))
        sampler = DistributedSampler(range(self.n), num_replicas=self.world_size, rank=self.rank,
                                     shuffle=True, seed=self.seed, drop_last=False)
        sampler.set_epoch(epoch)
        return list(sampler)

    def batch(self, k: int) -> list[tuple[int, int]]:
        items = []
        for i in range(self.batch_size):
            epoch, pos = divmod(k * self.batch_size + i, self.per_rank)
            index = self.epoch_order(epoch)[pos]
            items.append((index, sample_seed(self.seed, self.rank, k, i)))
        return items

    def epoch_at(self, k: int) -> float:
        """Epochs completed after micro-batch k (0-based) of this rank."""
        return (k + 1) * self.batch_size / self.per_rank

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1


def validation_batches(n: int, batch_size: int, rank: int, world_size: int, max_batches: int) -> list[list[int]]:
    """Fixed validation batches; every rank gets the same number of equally sized batches so
    that the all-gathered losses line up."""
    per_rank = n // world_size
    share = list(range(rank * per_rank, (rank + 1) * per_rank))
    batches = [share[i:i + batch_size] for i in range(0, len(share), batch_size)]
    return [b for b in batches if len(b) >= 2][:max_batches]  # contrastive terms need 2


def _worker_init(_: int) -> None:
    # Decoding and augmenting are per-sample; one thread per worker avoids oversubscription.
    torch.set_num_threads(1)


@dataclass
class LoaderOptions:
    num_workers: int = 0
    pin_memory: bool = False
    seed: int = 0


def make_loader(dataset: Dataset, batch_sampler: Any, options: LoaderOptions) -> DataLoader:
    workers = options.num_workers
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate_pairs,
        pin_memory=options.pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
        # An explicit generator: the loader must not draw from the global RNG, whose state
        # the checkpoint restores for dropout (exact resume).
        generator=torch.Generator().manual_seed(options.seed),
    )
