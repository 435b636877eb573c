"""data/splits.py: the validation split is stratified by label and content class, disjoint, and holds no copy of a
training image."""
from dataclasses import replace

import numpy as np

from classes import load_cifake
from realfake.data.splits import split_indices, split_train_val


def test_validation_split_is_stratified_and_disjoint(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    train, val = split_train_val(data, 0.1, seed=0)
    assert len(val) == 200 and len(train) == 1800 and not set(train.sources) & set(val.sources)
    assert (val.labels == 1).sum() == 100 and val.classes.bincount().tolist() == [20] * 10
    assert split_train_val(data, 0.1, seed=0)[1].sources == val.sources


def test_validation_images_that_copy_a_training_image_are_left_out_and_the_training_part_kept(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    train, val, copies = split_indices(data, 0.1, seed=0)
    assert len(copies) == 0 and len(val) == 200
    digests = data.digests.copy()
    digests[val[:5]] = digests[train[:5]]                # five validation files now byte-identical to training files
    digests[val[5]] = digests[val[6]]                    # two validation files that copy each other: both kept
    train2, val2, copies2 = split_indices(replace(data, digests=digests), 0.1, seed=0)
    assert np.array_equal(train2, train) and np.array_equal(copies2, np.sort(val[:5]))
    assert np.array_equal(np.sort(np.concatenate([val2, copies2])), val) and set(val[5:7]) <= set(val2)
    groups = np.arange(len(data))
    groups[val[10]] = groups[train[0]]                   # near-duplicate groups given explicitly
    assert split_indices(data, 0.1, seed=0, groups=groups)[2].tolist() == [val[10]]
