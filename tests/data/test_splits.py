"""data/splits.py: the validation split is stratified by label and content class, and disjoint."""
from classes import load_cifake
from realfake.data.splits import split_train_val


def test_validation_split_is_stratified_and_disjoint(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    train, val = split_train_val(data, 0.1, seed=0)
    assert len(val) == 200 and len(train) == 1800 and not set(train.sources) & set(val.sources)
    assert (val.labels == 1).sum() == 100 and val.classes.bincount().tolist() == [20] * 10
    assert split_train_val(data, 0.1, seed=0)[1].sources == val.sources
