"""The validation split every run holds out of CIFAKE's training split, and the real images the benchmark's runs and
the project's own generators (owngen.py) train on. Below training.py and owngen.py, which both need it."""
import numpy as np
from sklearn.model_selection import train_test_split

from classes import REAL, load_cifake
from project import cifake_root

VAL_FRACTION = 0.1                   # share of the training split held out (stratified by label and content class)


def split_train_val(dataset, val_fraction=VAL_FRACTION, seed=0):
    """A stratified (label x content class), seeded hold-out: returns (train, validation) ImageSets."""
    strata = dataset.labels * 100 + (dataset.classes + 1 if dataset.classes is not None else 0)
    train_idx, val_idx = train_test_split(np.arange(len(dataset)), test_size=val_fraction,
                                          stratify=strata.numpy(), random_state=seed)
    return dataset.subset(np.sort(train_idx)), dataset.subset(np.sort(val_idx))


def benchmark_splits(sample=False):
    """CIFAKE's training split less its validation split (seed 0, as every benchmark run), and that split."""
    return split_train_val(load_cifake(cifake_root(sample=sample), "train", verbose=False))


def benchmark_reals(sample=False):
    """The REAL images of benchmark_splits' training part: what every benchmark run trains on as reals, and what the
    project's own generators learn from."""
    train, _ = benchmark_splits(sample)
    return train.images[train.labels == REAL]
