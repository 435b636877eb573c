"""data/datasets.py: an ImageSet's subsets keep every field aligned; a generator's fixed halves split once and
always the same way."""
import numpy as np
import torch

from classes import load_agiri
from realfake import FAKE
from realfake.data.datasets import fixed_half, generator_fakes


def test_subset_keeps_every_field_aligned(sample_root):
    data = load_agiri(sample_root / "ai-generated-images-vs-real-images", preprocess="multi_crop")
    part = data.subset([2, 5])
    assert part.sources == [data.sources[2], data.sources[5]]
    assert torch.equal(part.images[9:], data.images[45:54]) and part.labels.tolist() == data.labels[[2, 5]].tolist()


def test_fixed_halves_split_once_and_always_the_same_way(sample_root):
    train, test = fixed_half(101, "train"), fixed_half(101, "test")
    assert len(train) == 50 and len(test) == 51 and not set(train) & set(test)
    assert np.array_equal(train, fixed_half(101, "train"))
    folder = sample_root / "generators32" / "gan-small"
    whole, halves = generator_fakes(folder, "gan-small"), [generator_fakes(folder, "gan-small", p)
                                                             for p in ("train", "test")]
    assert (whole.labels == FAKE).all() and sorted(halves[0].sources + halves[1].sources) == sorted(whole.sources)
    assert not set(halves[0].digests) & set(halves[1].digests)
