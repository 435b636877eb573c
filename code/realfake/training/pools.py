"""What a run trains on: the REAL training images and the FAKE class's sources (Recipe.train_fakes), the rows of that
pool each epoch takes (Recipe.balance), and the benchmark's real training images.

A source is "cifake" (CIFAKE's own fakes), "generator:NAME[:all]" (a development generator: half of it, or all),
"own:NAME" (a generator the project trains on the run's real training images, own_generators.py), "folder:DIR" (any
images), or a fake-maker of fake_makers.FAKE_MAKERS."""
import numpy as np
import torch

from classes import load_cifake
from realfake import FAKE, REAL
from realfake.data.datasets import ImageSet, LoadReport, generator_fakes, generator_folders, load_image_files
from realfake.data.splits import split_train_val
from realfake.project import ProjectError, cifake_root, dataset_dir
from realfake.training.fake_makers import make_fakes
from realfake.training.own_generators import own_generator


def fake_source(source, train_set, real, generator_dirs, device="cpu", progress=True):
    """The images of one train_fakes source (Recipe.train_fakes) as an ImageSet of fakes."""
    if source == "cifake":
        return train_set.subset(train_set.labels == FAKE)
    if source.startswith("folder:"):
        return load_image_files(source.split(":", 1)[1], source, verbose=False)
    if source.startswith("generator:"):
        name, _, part = source.split(":", 1)[1].partition(":")
        if name not in generator_dirs:
            raise ProjectError(f"recipe source {source}: no generator {name} (found {', '.join(generator_dirs)})")
        return generator_fakes(generator_dirs[name], name, None if part == "all" else "train")
    if source.startswith("own:"):
        folder = own_generator(source.split(":", 1)[1], real.images, progress=progress)
        return generator_fakes(folder, source)
    made = make_fakes(source, real.images, device=device, progress=progress)
    return ImageSet(f"{source}({real.name})", made, torch.full((len(made),), FAKE),
                    [f"{source}:{s}" for s in real.sources], LoadReport(len(made), len(made)), digests=real.digests)


def training_pool(train_set, recipe, generator_dirs=None, device="cpu", progress=True):
    """Every image a run may train on: the REAL training images, then each recipe.train_fakes source's fakes.
    Returns (ImageSet, the source of each row: -1 for a real, k for train_fakes[k])."""
    if recipe.train_fakes == ("cifake",):
        return train_set, np.where(train_set.labels.numpy() == REAL, -1, 0)
    generator_dirs = generator_dirs or generator_folders(dataset_dir("ddpm32_dir"), dataset_dir("generators32_dir"))
    real = train_set.subset(train_set.labels == REAL)
    data, source_of = real, [np.full(len(real), -1)]
    for k, source in enumerate(recipe.train_fakes):
        fakes = fake_source(source, train_set, real, generator_dirs, device, progress)
        data, source_of = data.join(fakes, train_set.name), source_of + [np.full(len(fakes), k)]
    return data, np.concatenate(source_of)


def epoch_rows(source_of, recipe, epoch):
    """The rows of the pool (training_pool) one epoch trains on. Pooled: every row, and the smaller class
    oversampled (seeded, the same each epoch) to the size of the larger. Sources: every real, and as many fakes,
    each source its share (recipe.fake_shares, default equal), drawn afresh each epoch without replacement where
    the source has enough images."""
    rng = np.random.default_rng([recipe.seed, epoch] if recipe.balance == "sources" else recipe.seed)
    reals, fakes = np.flatnonzero(source_of < 0), np.flatnonzero(source_of >= 0)
    if recipe.balance == "pooled":
        smaller = fakes if len(fakes) < len(reals) else reals
        extra = rng.choice(smaller, abs(len(reals) - len(fakes)), replace=True)
        return np.concatenate([np.arange(len(source_of)), extra])
    weights = np.asarray(recipe.fake_shares or [1.0] * len(recipe.train_fakes), dtype=np.float64)
    counts = source_counts(weights / weights.sum(), len(reals))
    drawn = [rng.choice(np.flatnonzero(source_of == k), n, replace=n > (source_of == k).sum())
             for k, n in enumerate(counts) if n]
    return np.concatenate([reals, *drawn])


def source_counts(shares, total):
    """`total` split by `shares` into whole numbers that add up to it (largest remainders)."""
    exact = np.asarray(shares) * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[:total - counts.sum()]] += 1
    return counts


def benchmark_splits(sample=False):
    """CIFAKE's training split less its validation split (seed 0, as every benchmark run), and that split."""
    return split_train_val(load_cifake(cifake_root(sample=sample), "train", verbose=False))


def benchmark_reals(sample=False):
    """The REAL images of benchmark_splits' training part: what every benchmark run trains on as reals, and what the
    project's own generators learn from."""
    train, _ = benchmark_splits(sample)
    return train.images[train.labels == REAL]
