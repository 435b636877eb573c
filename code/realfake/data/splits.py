"""The validation split every run holds out of CIFAKE's training split (stratified by label and content class, no
image in it a copy of a training image), and the full-size detector's held-out fold (stratified, duplicate groups
kept on one side)."""
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

VAL_FRACTION = 0.1                   # share of the training split held out (stratified by label and content class)
HELD_OUT_FRACTION = 0.2              # the AGIRI test fold, held out first (stratified, duplicates kept together)


def split_train_val(dataset, val_fraction=VAL_FRACTION, seed=0, groups=None):
    """A stratified (label x content class), seeded hold-out: returns (train, validation) ImageSets, the validation
    split without the images that share a duplicate group with a training image (`groups`: default, byte-identical
    files; see `split_indices`)."""
    train, val, _ = split_indices(dataset, val_fraction, seed, groups)
    return dataset.subset(train), dataset.subset(val)


def split_indices(dataset, val_fraction=VAL_FRACTION, seed=0, groups=None):
    """(train, validation, dropped) indices. The stratified draw is the one every model here was trained with; the
    drawn validation images that share a group with a training image (CIFAKE holds 1,336 groups of byte-identical
    fakes) are dropped, neither trained on nor validated on, so that a threshold or a choice is never made on copies
    of training images. The training part is the draw's, unchanged."""
    strata = dataset.labels * 100 + (dataset.classes + 1 if dataset.classes is not None else 0)
    train, val = train_test_split(np.arange(len(dataset)), test_size=val_fraction, stratify=strata.numpy(),
                                  random_state=seed)
    groups = dataset.digests if groups is None else np.asarray(groups)
    copies = np.isin(groups[val], groups[train]) if groups is not None else np.zeros(len(val), bool)
    return np.sort(train), np.sort(val[~copies]), np.sort(val[copies])


def held_out_split(labels, groups, fraction=HELD_OUT_FRACTION, seed=0):
    """(train indices, held-out indices): one stratified, grouped fold of about `fraction` of the images."""
    folds = StratifiedGroupKFold(round(1 / fraction), shuffle=True, random_state=seed)
    train, held_out = next(folds.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train), np.sort(held_out)
