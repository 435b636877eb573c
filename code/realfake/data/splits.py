"""The validation split every run holds out of CIFAKE's training split (stratified by label and content class), and
the full-size detector's held-out fold (stratified, duplicate groups kept on one side)."""
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

VAL_FRACTION = 0.1                   # share of the training split held out (stratified by label and content class)
HELD_OUT_FRACTION = 0.2              # the AGIRI test fold, held out first (stratified, duplicates kept together)


def split_train_val(dataset, val_fraction=VAL_FRACTION, seed=0):
    """A stratified (label x content class), seeded hold-out: returns (train, validation) ImageSets."""
    strata = dataset.labels * 100 + (dataset.classes + 1 if dataset.classes is not None else 0)
    train_idx, val_idx = train_test_split(np.arange(len(dataset)), test_size=val_fraction,
                                          stratify=strata.numpy(), random_state=seed)
    return dataset.subset(np.sort(train_idx)), dataset.subset(np.sort(val_idx))


def held_out_split(labels, groups, fraction=HELD_OUT_FRACTION, seed=0):
    """(train indices, held-out indices): one stratified, grouped fold of about `fraction` of the images."""
    folds = StratifiedGroupKFold(round(1 / fraction), shuffle=True, random_state=seed)
    train, held_out = next(folds.split(np.zeros(len(labels)), labels, groups))
    return np.sort(train), np.sort(held_out)
