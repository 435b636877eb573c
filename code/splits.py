"""The validation split every run holds out of CIFAKE's training split, and the real images the benchmark's runs and
the project's own generators (owngen.py) train on. Below training.py and owngen.py, which both need it. And the
full-size detector's held-out fold (pretrained.py), with duplicates kept on one side."""
import numpy as np
import torch.nn.functional as F
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from classes import REAL, load_cifake
from project import cifake_root

VAL_FRACTION = 0.1                   # share of the training split held out (stratified by label and content class)
HELD_OUT_FRACTION = 0.2              # the AGIRI test fold, held out first (stratified, duplicates kept together)
NEAR_DUPLICATE_BITS = 5              # difference hashes this close (of 64 bits) put two images in one group


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


def difference_hash(images, size=8):
    """A 64-bit difference hash per image (uint8 N x 3 x H x W): is each pixel of an 8 x 9 grey thumbnail brighter
    than its right neighbour. Re-encoding or mild resizing changes a few bits; other images differ in about 32."""
    grey = images.float().mean(1, keepdim=True)
    small = F.interpolate(grey, size=(size, size + 1), mode="area")[:, 0]
    return (small[:, :, 1:] > small[:, :, :-1]).reshape(len(images), -1).numpy()


def duplicate_groups(images, digests, max_bits=NEAR_DUPLICATE_BITS, chunk=256):
    """A group number per image: byte-identical files (same digest) and near-identical images (difference hashes
    within `max_bits`) share one, transitively. Hashes are compared `chunk` images against all at a time."""
    n = len(images)
    parent = np.arange(n)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    packed = np.packbits(difference_hash(images), axis=1)                     # n x 8 bytes
    ones = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)   # set bits of each byte value
    pairs = []
    for start in range(0, n, chunk):
        distance = ones[packed[start:start + chunk, None, :] ^ packed[None, :, :]].sum(2)
        rows, cols = np.nonzero(distance <= max_bits)
        pairs += [(start + i, j) for i, j in zip(rows.tolist(), cols.tolist()) if start + i < j]
    first_copy = {}
    for i, digest in enumerate(digests.tolist()):
        pairs.append((first_copy.setdefault(digest, i), i))
    for i, j in pairs:
        parent[root(i)] = root(j)
    return np.array([root(i) for i in range(n)])


def held_out_split(labels, groups, fraction=HELD_OUT_FRACTION, seed=0):
    """(train indices, held-out indices): one stratified, grouped fold of about `fraction` of the images."""
    folds = StratifiedGroupKFold(round(1 / fraction), shuffle=True, random_state=seed)
    train, held_out = next(folds.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train), np.sort(held_out)
