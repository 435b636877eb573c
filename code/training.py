"""Training: every hyper-parameter of a run in one `Recipe`, the named recipes, the shipped models, and the loop.

    from training import RECIPES, train_model
    model, history = train_model(train_set, val_set, RECIPES["fast"])

`python code/train.py` is the command-line front; the notebooks and `reproduce.py` call the same functions.
The decision threshold stored with a model is chosen on its validation split (maximal balanced accuracy),
never on the test set.
"""
import hashlib
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

import perturb
from checkpoints import load_model, read_sidecar, save_model
from classes import Batcher, build_model, count_parameters, generator_folders, load_cifake, single_view
from distributed import SINGLE, wrap
from evaluate import calibration_figures, predict_logits, predict_scores, score_at_threshold
from generalise import FAKE_MAKERS, INPUTS, jitter_colour, shuffle_patches
from owngen import MODELS as OWN_MODELS
from pools import epoch_rows, training_pool
from perturb import AUGMENTATIONS
from project import (ProjectError, check_writable, cifake_root, dataset_dir, fast_bfloat16, git_commit, model_file,
                     seed_everything, shown)
from splits import VAL_FRACTION, split_train_val


@dataclass(frozen=True)
class Recipe:
    """Every hyper-parameter of a training run. The loss is always BCEWithLogitsLoss on the logit of P(real)."""
    name: str = "original"
    optimizer: str = "sgd"          # sgd (momentum, optionally Nesterov) or adamw (default betas)
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.001               # the constant rate, or the peak of the one-cycle schedule
    momentum: float = 0.9           # SGD only
    nesterov: bool = False          # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"      # constant, or onecycle (ONE_CYCLE, stepped once per batch)
    label_smoothing: float = 0.0    # targets y * (1 - s) + s / 2
    flip: bool = False              # random horizontal flips of half of each batch
    shift: int = 0                  # random shifts of up to this many pixels, per image (reflection-padded)
    augment: tuple = ()             # "blur" and/or "jpeg": perturb.augment, redrawn each epoch
    amp: bool = False               # bfloat16 autocast, only where it is fast (project.fast_bfloat16)
    compile: bool = False           # torch.compile the training forward pass (needs a C++ compiler on CPU)
    test_flip: bool = False         # StrongCNN at test time: average the logits of each view and its mirror
    test_shift: int = 0             # StrongCNN at test time: ... and of the image moved k pixels 4 ways
    input: str = "rgb"              # the network's input transform (generalise.INPUTS), kept in its checkpoint
    colour_jitter: float = 0.0      # brightness, contrast, saturation jitter this strong (generalise.jitter_colour)
    patch_shuffle: int = 0          # tiles of this size shuffled in half of the images (generalise.shuffle_patches)
    train_fakes: tuple = ("cifake",)  # the FAKE class: cifake (SD 1.4), fake-makers (generalise.FAKE_MAKERS) run on the
    #                                   REAL training images, generator:NAME (a fixed half of a development generator),
    #                                   generator:NAME:all (all of it), own:NAME (owngen.py), folder:PATH (any images)
    balance: str = "pooled"         # pooled: one pool of fakes, the smaller class oversampled; sources: each source of
    #                                 train_fakes its share of every epoch's FAKE class (redrawn each epoch), fakes = reals
    fake_shares: tuple = ()         # balance "sources": each train_fakes source's weight, in order (empty: equal)
    seed: int = 0                   # weights, batch order, augmentation and the validation split
    val_fraction: float = VAL_FRACTION  # share of the training split held out (stratified by label and class)

    def __post_init__(self):
        """Refuse values no run could use, in one line, before any data is loaded."""
        problems = [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in (
            ("optimizer", self.optimizer in OPTIMIZERS, " or ".join(OPTIMIZERS)),
            ("schedule", self.schedule in SCHEDULES, " or ".join(SCHEDULES)),
            ("epochs", self.epochs >= 1, "at least 1"), ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", self.lr > 0, "above 0"), ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("shift", self.shift >= 0, "at least 0"), ("test_shift", self.test_shift >= 0, "at least 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("augment", set(self.augment) <= set(AUGMENTATIONS), f"a selection of {', '.join(AUGMENTATIONS)}"),
            ("input", self.input in INPUTS, f"one of {', '.join(INPUTS)}"),
            ("colour_jitter", 0 <= self.colour_jitter < 1, "in [0, 1)"),
            ("patch_shuffle", self.patch_shuffle in (0, 2, 4, 8, 16), "0, 2, 4, 8 or 16 (a divisor of 32)"),
            ("train_fakes", len(self.train_fakes) > 0 and all(
                source == "cifake" or source in FAKE_MAKERS or source.startswith(("generator:", "folder:"))
                or source in OWN_SOURCES for source in self.train_fakes),
             f"a selection of cifake, {', '.join(FAKE_MAKERS)}, {', '.join(OWN_SOURCES)}, generator:NAME[:all], "
             f"folder:PATH"),
            ("balance", self.balance in BALANCES, " or ".join(BALANCES)),
            ("fake_shares", not self.fake_shares or (len(self.fake_shares) == len(self.train_fakes) and min(
                self.fake_shares) >= 0 and sum(self.fake_shares) > 0), "one weight >= 0 per train_fakes source"))
            if not ok]
        if problems:
            raise ProjectError(f"recipe {self.name}: " + "; ".join(problems))


OPTIMIZERS, SCHEDULES, BALANCES = ("sgd", "adamw"), ("constant", "onecycle"), ("pooled", "sources")
OWN_SOURCES = tuple(f"own:{name}" for name in OWN_MODELS)

# One-cycle schedule: linear warm-up over the first quarter of the steps from lr/25 to lr, then linear decay to
# lr/25,000.
ONE_CYCLE = dict(pct_start=0.25, div_factor=25.0, final_div_factor=1000.0, anneal_strategy="linear")

RECIPES = {recipe.name: recipe for recipe in (
    # The original study's, for replication: plain SGD at a constant lr, batch 32, float32.
    Recipe("original"),
    # Fast (base CNN): AdamW for three epochs at batch 256, one-cycle to lr 0.005, bfloat16 where that is fast;
    # the best on validation of four searches (notes/results.md, "The fast recipe").
    Recipe("fast", optimizer="adamw", epochs=3, batch_size=256, lr=0.005, weight_decay=0.01, schedule="onecycle",
           amp=True),
    # Strong (StrongCNN): one-cycle SGD, longer, with weight decay, mild label smoothing, flips and 2-pixel shifts
    # (without shifts it fits the training split to 99.99% and stalls at 97.5% on validation), averaged over 10
    # test-time views; 30 epochs fit the 60-minute budget on a 2-core AVX512-BF16 CPU in bfloat16.
    Recipe("strong", epochs=30, batch_size=256, lr=0.1, nesterov=True, weight_decay=5e-4, schedule="onecycle",
           label_smoothing=0.05, flip=True, shift=2, amp=True, test_flip=True, test_shift=1),
)}
# Strong in about a sixth of its time (notes/results.md, 14; chosen on validation): six compiled epochs with
# FAST_STRONG's narrower network; 1.5 points less accurate on test.
RECIPES["strong_fast"] = replace(RECIPES["strong"], name="strong_fast", epochs=6, compile=True)
# Strong plus CNNSpot-style blur and JPEG augmentation: robust to blur and resizing, 0.4 points lower when clean.
RECIPES["strong_aug"] = replace(RECIPES["strong"], name="strong_aug", augment=("blur", "jpeg"))
# The transfer study (notes/results.md, "Other generators"): the fast recipe with one change each, plus the oracles,
# trained on a fixed half of one generator's images against CIFAKE's real training images (never shipped).
TRANSFER_CHANGES = {
    "gray": dict(input="gray"), "standardise": dict(input="standardise"), "jitter": dict(colour_jitter=0.3),
    "highpass": dict(input="highpass"), "npr": dict(input="npr"), "spectrum": dict(input="spectrum"),
    "patchshuffle": dict(patch_shuffle=8), "resample": dict(train_fakes=("cifake", "resample")),
    "autoencoder": dict(train_fakes=("cifake", "autoencoder")),
    "autoencoder_tconv": dict(train_fakes=("cifake", "autoencoder_tconv")),
    "made": dict(train_fakes=("cifake", "resample", "autoencoder", "autoencoder_tconv")),
    "plus_ddpm": dict(train_fakes=("cifake", "generator:ddpm-retrained")),
    "oracle_ddpm": dict(train_fakes=("generator:ddpm-retrained",)),
    "oracle_gan": dict(train_fakes=("generator:gan-small",)),
}
RECIPES.update({f"fast_{key}": replace(RECIPES["fast"], name=f"fast_{key}", **change)
                for key, change in TRANSFER_CHANGES.items()})
# The transfer study's best change on the base CNN carried to StrongCNN: its log-magnitude spectrum as input, the
# strong recipe cut to 12 epochs (under 30 minutes on 2 cores) and no test-time views (a spectrum's magnitude ignores
# circular shifts).
RECIPES["general"] = replace(RECIPES["strong"], name="general", epochs=12, input="spectrum", test_flip=False,
                             test_shift=0)
# The pretrained backbone's detectors (pretrained.fit_cifake) take only the seed, the validation split and the
# training mix (train_fakes, balance) from a recipe; nothing here is a training hyper-parameter of theirs.
RECIPES["pretrained"] = replace(RECIPES["original"], name="pretrained")
PRETRAINED_FIELDS = ("seed", "val_fraction", "train_fakes", "balance", "fake_shares")   # what they do read


@dataclass(frozen=True)
class ModelSpec:
    """A shipped model: a recipe and an architecture (`build_model`'s name and keywords)."""
    recipe: Recipe
    arch: str = "cnn"
    arch_kwargs: dict = field(default_factory=dict)


SAMPLE_EPOCHS = 2                   # the sample data only smoke-tests the pipeline: no shipped recipe runs in full
SHIPPED_MODELS = {
    "base_model": ModelSpec(replace(RECIPES["original"], epochs=10)),
    "attn_model": ModelSpec(replace(RECIPES["original"], epochs=10), "cnn", {"attn": True}),
    "mini_model": ModelSpec(replace(RECIPES["original"], epochs=1)),
    "strong_model": ModelSpec(RECIPES["strong"], "strong", {"widths": (32, 64, 112)}),
    "strong_aug_model": ModelSpec(RECIPES["strong_aug"], "strong", {"widths": (32, 64, 96)}),
}

# The strong_fast recipe's network: not shipped, as it misses the strong model's accuracy (notes/results.md, 14);
# bench.py recipes times it against the strong recipe.
FAST_STRONG = ModelSpec(RECIPES["strong_fast"], "strong", {"widths": (24, 48, 96)})


def train_command(name):
    """The command line that trains shipped model `name` (SHIPPED_MODELS) from scratch."""
    spec = SHIPPED_MODELS[name]
    flags = [f"--arch {spec.arch}"] if spec.arch != "cnn" else []
    if spec.recipe.name != "original":
        flags.append(f"--recipe {spec.recipe.name}")
    if spec.recipe.epochs != RECIPES[spec.recipe.name].epochs:
        flags.append(f"-ep {spec.recipe.epochs}")
    if spec.arch_kwargs.get("attn"):
        flags.append("--attn")
    if "widths" in spec.arch_kwargs:
        flags.append("--widths " + ",".join(map(str, spec.arch_kwargs["widths"])))
    return " ".join(["python code/train.py", *flags, f"-mf {name}"])


def dataset_fingerprint(dataset):
    """A short hash of a split's file contents, in order: two runs on the same data share it."""
    return f"{dataset.name}:{len(dataset)}:" + hashlib.sha1(dataset.digests.tobytes()).hexdigest()[:16]


def monitor(model, val_set, device, amp=False):
    """Validation loss, accuracy at 0.5 and AUROC for progress reports, on one view per image (test-time view
    averaging would cost up to 10x as much; the final calibration and threshold use every view), in bfloat16 when
    the run trains in it (cheaper; these figures only report progress)."""
    with single_view(model), torch.autocast(torch.device(device).type, torch.bfloat16, enabled=amp):
        scores = predict_scores(model, val_set.images, device)
    p = torch.from_numpy(scores).clamp(1e-7, 1 - 1e-7)
    loss = float(nn.functional.binary_cross_entropy(p, val_set.labels.double()))
    result = score_at_threshold(val_set.labels.numpy(), scores, 0.5)
    return {"val_loss": loss, "val_accuracy": result["accuracy"], "val_auroc": result["auroc"]}


def make_optimizer(parameters, recipe):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise AssertionError(recipe.optimizer)            # Recipe refuses any other


def make_schedule(optimizer, schedule, total_steps):
    """None for a constant learning rate; for 'onecycle', ONE_CYCLE around the optimizer's lr."""
    if schedule == "constant":
        return None
    if schedule == "onecycle":
        peak = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps,
                                                   cycle_momentum=False, **ONE_CYCLE)
    raise AssertionError(schedule)


def train_model(train_set, val_set, recipe=RECIPES["original"], arch="cnn", arch_kwargs=None, device="cpu",
                log_every=0, progress=True, generator_dirs=None, world=SINGLE):
    """Train a network (`build_model(arch, **arch_kwargs)`) with `recipe`. Returns (model in eval mode, history):
    history["epochs"] has the train loss and validation loss / accuracy / AUROC per epoch (one view per image),
    history["steps"] (when log_every > 0) the running loss and accuracy and the validation figures every
    `log_every` batches, history["amp"] whether bfloat16 was used, history["n_train"] the images per epoch (after
    recipe.train_fakes), history["fakes_per_epoch"] each fake source's images per epoch, and what `calibrate`
    returns: the temperature (also set as model.temperature), validation ECE, the threshold and every validation
    figure at it. `generator_dirs`: {name: folder} where generator:NAME fakes are read (default: config.json's
    development generators, classes.generator_folders). `world`: the processes training together (distributed.py);
    each takes its slice of every batch, and only the main one validates and calibrates (the others' history has
    the train loss alone)."""
    if arch == "pretrained":                           # probes and fine-tunes chosen on validation (pretrained.py)
        from pretrained import fit_cifake
        fakes_per_epoch = {}
        if recipe.train_fakes != ("cifake",):         # a benchmark mix: one epoch's rows of the pool, as drawn
            pool, source_of = training_pool(train_set, recipe, generator_dirs, device, progress)
            rows = np.sort(epoch_rows(source_of, recipe, 1))
            train_set, fakes = pool.subset(rows), source_of[rows]
            fakes_per_epoch = dict(zip(recipe.train_fakes, np.bincount(fakes[fakes >= 0],
                                                                       minlength=len(recipe.train_fakes)).tolist()))
        model, history = fit_cifake(train_set, val_set, **(arch_kwargs or {}), device=device, seed=recipe.seed)
        history["fakes_per_epoch"] = fakes_per_epoch
        if recipe.train_fakes == ("cifake",):         # CIFAKE's detector: its cost beside the strong recipe's
            yardstick = estimated_seconds(RECIPES["strong"], "strong", len(train_set), device)
            history["sidecar"]["time"] = {"seconds": round(history["seconds"], 1), "ratio to strong": round(
                history["seconds"] / yardstick, 3), "strong recipe here (estimated from timed steps)": round(yardstick)}
        return model, history
    device = torch.device(device)
    seed_everything(recipe.seed)
    arch_kwargs = dict(arch_kwargs or {})
    if recipe.test_flip or recipe.test_shift:
        if arch != "strong":
            raise ProjectError("test-time view averaging (test_flip, test_shift) is an option of --arch strong only")
        arch_kwargs.update(test_flip=recipe.test_flip, test_shift=recipe.test_shift)
    if recipe.input != "rgb":
        arch_kwargs["input"] = recipe.input
    pool, source_of = training_pool(train_set, recipe, generator_dirs, device, progress)
    # channels-last convolutions are 1.3-1.6x faster on the CPU (oneDNN) for both networks (bench.py layout)
    model = build_model(arch, **arch_kwargs).to(device, memory_format=torch.channels_last)
    amp = recipe.amp and fast_bfloat16(device)
    net = wrap(model, world)                                    # shares the weights; evaluation stays eager
    net = torch.compile(net) if recipe.compile else net
    progress = progress and world.main

    def batches(epoch, seed):
        """One epoch's Batcher over its rows of the pool, and how many images it takes from each fake source."""
        rows = epoch_rows(source_of, recipe, epoch)
        whole = len(rows) == len(pool) and (rows == np.arange(len(rows))).all()     # then no copy of the split
        images, labels = (pool.images, pool.labels) if whole else (pool.images[rows], pool.labels[rows])
        if recipe.augment:                             # a fresh draw of blurred / re-compressed images each epoch
            images = perturb.augment(images, recipe.augment, seed=seed)
        sources = source_of[rows]
        return (Batcher(images, labels, recipe.batch_size, device, shuffle=True, seed=seed, flip=recipe.flip,
                        shift=recipe.shift), np.bincount(sources[sources >= 0], minlength=len(recipe.train_fakes)))
    redrawn = recipe.augment or recipe.balance == "sources"             # else one batcher serves every epoch
    epoch_batches, per_source = batches(1, recipe.seed * 1000 + 1 if redrawn else recipe.seed)
    optimizer = make_optimizer(model.parameters(), recipe)
    scheduler = make_schedule(optimizer, recipe.schedule, recipe.epochs * len(epoch_batches))
    loss_fn = nn.BCEWithLogitsLoss()
    smoothing = recipe.label_smoothing
    history = {"epochs": [], "steps": [], "amp": amp, "n_train": len(epoch_batches.labels),
               "fakes_per_epoch": dict(zip(recipe.train_fakes, per_source.tolist()))}
    augmenter = torch.Generator().manual_seed(recipe.seed + 1)          # colour jitter and patch shuffling
    step, seen = 0, 0
    for epoch in range(1, recipe.epochs + 1):
        if redrawn and epoch > 1:
            epoch_batches, _ = batches(epoch, recipe.seed * 1000 + epoch)
        model.train()
        started = time.perf_counter()
        epoch_loss = torch.zeros((), device=device)
        window_loss, window_correct, window_n = 0.0, 0, 0
        for x, y in tqdm(epoch_batches, desc=f"epoch {epoch}/{recipe.epochs}", unit="batch", leave=False,
                         disable=not progress):
            if recipe.colour_jitter:
                x = jitter_colour(x, recipe.colour_jitter, augmenter)
            if recipe.patch_shuffle:
                x = shuffle_patches(x, recipe.patch_shuffle, augmenter)
            n = len(y)                                 # the global batch; this process trains on its slice
            x, y = world.shard(x), world.shard(y)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                logits = net(x.contiguous(memory_format=torch.channels_last)).float()
            # weighted so that DDP's mean over the processes is the whole batch's mean loss
            loss = loss_fn(logits, y * (1 - smoothing) + 0.5 * smoothing) * (len(y) * world.size / n)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            epoch_loss += loss.detach() * n / world.size  # the slice's summed loss; no sync per batch
            step, seen = step + 1, seen + n
            if log_every and world.main:               # learning-curve logging (syncs every batch)
                window_loss += loss.item() * n / world.size
                window_correct += int(((logits > 0) == (y > 0.5)).sum())
                window_n += len(y)
                if step % log_every == 0:
                    history["steps"].append({"step": step, "images_seen": seen, "loss": window_loss / window_n,
                                             "accuracy": window_correct / window_n,
                                             **monitor(model, val_set, device, amp)})
                    window_loss, window_correct, window_n = 0.0, 0, 0
                    model.train()
        train_loss = float(world.total(epoch_loss)) / len(epoch_batches.labels)
        metrics = monitor(model, val_set, device, amp) if world.main else {}
        record = {"epoch": epoch, "train_loss": train_loss, **metrics, "seconds": time.perf_counter() - started}
        history["epochs"].append(record)
        if progress:
            print(f"epoch {epoch}/{recipe.epochs}: train loss {record['train_loss']:.4f} | val loss "
                  f"{metrics['val_loss']:.4f} acc {metrics['val_accuracy']:.4f} AUROC {metrics['val_auroc']:.4f} | "
                  f"{record['seconds']:.1f} s")
    if world.main:
        history.update(calibrate(model, val_set, device))
    return model.eval(), history


def calibrate(model, val_set, device="cpu"):
    """Fit the model's temperature on the validation split (set as model.temperature), then choose the threshold
    on the calibrated scores. Returns the figures for the history: temperature, validation ECE before and after,
    threshold and every validation figure at it."""
    result = calibration_figures(val_set.labels.numpy(), predict_logits(model, val_set.images, device))
    model.temperature = result["temperature"]
    return result


def estimated_seconds(recipe, arch, n_train, device="cpu", arch_kwargs=None, steps=6):
    """`recipe`'s training time for `n_train` images on this machine, from `steps` timed steps on random 32 px images
    (after two to warm up), validation left out: the yardstick other detectors' training time is compared with."""
    device = torch.device(device)
    model = build_model(arch, **(arch_kwargs or {})).to(device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model.parameters(), recipe)
    x = torch.randn(recipe.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (recipe.batch_size,), device=device).float()
    for step in range(steps + 2):
        if step == 2:                                 # the warm-up steps done (on a GPU, finished) before timing
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=recipe.amp and fast_bfloat16(device)):
            loss = nn.functional.binary_cross_entropy_with_logits(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / steps * recipe.epochs * -(-n_train // recipe.batch_size)


def train_and_save(recipe, arch="cnn", arch_kwargs=None, root=None, path=None, device="cpu", sample=False,
                   log_every=0, extra_info=None, world=SINGLE):
    """Train on the CIFAKE training split in `root` (default config.json's) with a validation split carved from
    it, and save the model to `path` (str or Path; with a JSON sidecar of everything needed to reproduce it) when
    given: the destination is checked before training starts; `extra_info` joins the sidecar. With many processes
    (`world`, distributed.py) only the main one reports and saves. Returns (model, history)."""
    path = None if path is None else check_writable(path)
    dataset = load_cifake(root or cifake_root(sample=sample), "train")
    train_set, val_set = split_train_val(dataset, recipe.val_fraction, recipe.seed)
    print(f"training on {len(train_set)} images, validating on {len(val_set)}, device {device}, "
          f"torch {torch.__version__}")
    recipe_fields = {k: v for k, v in asdict(recipe).items()
                     if k != "name" and (arch != "pretrained" or k in PRETRAINED_FIELDS)}   # what this training reads
    print(f"recipe {recipe.name}: " + ", ".join(f"{k} {v}" for k, v in recipe_fields.items()))
    commit = git_commit()                         # the tree the training starts from, before it writes anything
    started = time.perf_counter()
    model, history = train_model(train_set, val_set, recipe, arch, arch_kwargs, device, log_every,
                                 generator_dirs=generator_folders(dataset_dir("ddpm32_dir", sample),
                                                                  dataset_dir("generators32_dir", sample)), world=world)
    wall = time.perf_counter() - started
    if not world.main:
        return model, history
    val = history["val_at_threshold"]
    print(f"validation: threshold {history['threshold']:.3f} (max balanced accuracy), accuracy {val['accuracy']:.4f}, "
          f"AUROC {val['auroc']:.4f}; temperature {history['temperature']:.3f} (ECE {history['val_ece_before']:.4f} -> "
          f"{history['val_ece']:.4f}); {wall:.0f} s")
    if path is not None:
        info = {"parameters": count_parameters(model), "recipe": recipe.name, **recipe_fields,
                "loss": "BCEWithLogitsLoss", "amp": history["amp"], "sample_data": sample,
                "dataset": dataset_fingerprint(train_set), "n_train": len(train_set), "n_val": len(val_set),
                "images_per_epoch": history["n_train"],
                "validation": val, "temperature": history["temperature"],
                "calibration": {k: history[k] for k in ("val_ece_before", "val_ece")}, "history": history["epochs"],
                "steps": history["steps"], "device": str(device), "torch": torch.__version__,
                "git_commit": commit, "wall_seconds": round(wall, 1), "processes": world.size,
                "fakes_per_epoch": history["fakes_per_epoch"], **history.get("sidecar", {}), **(extra_info or {})}
        save_model(model, path, history["threshold"], info)
        print(f"saved {shown(path)} and {path.with_suffix('.json').name}")
    return model, history


def train_or_load(name, sample=False, retrain=False, device="cpu"):
    """A shipped model (SHIPPED_MODELS): loaded from its file, or trained with its recipe when the file is missing
    or `retrain` is set (on the sample data, a smoke test of the pipeline, for at most SAMPLE_EPOCHS epochs).
    Returns (model, sidecar dict)."""
    spec, path = SHIPPED_MODELS[name], model_file(name, sample)
    if retrain or not path.is_file():
        recipe = replace(spec.recipe, epochs=min(spec.recipe.epochs, SAMPLE_EPOCHS)) if sample else spec.recipe
        print(f"training {name} (recipe {recipe.name}, {recipe.epochs} epochs{', sample data' if sample else ''}) ...")
        train_and_save(recipe, spec.arch, spec.arch_kwargs, path=path, device=device, sample=sample)
    model, checkpoint = load_model(path, device)
    if "temperature" not in checkpoint:                # trained before models were calibrated: do it now
        calibrate_saved(path, sample, device)
        model, _ = load_model(path, device)
    return model, read_sidecar(path)


def calibrate_saved(path, sample=False, device="cpu"):
    """Calibrate a saved model post hoc on its own validation split (rebuilt from the seed and fraction in its
    sidecar): its temperature, and the threshold re-chosen on the calibrated scores, are saved with the same
    weights; the sidecar records both and the commit that calibrated."""
    model, _ = load_model(path, device)
    sidecar = read_sidecar(path)
    _, val_set = split_train_val(load_cifake(cifake_root(sample=sample), "train", verbose=False),
                                 sidecar.get("val_fraction", VAL_FRACTION), sidecar.get("seed", 0))
    result = calibrate(model, val_set, device)
    print(f"calibrated {shown(path)} on {len(val_set)} validation images: temperature {result['temperature']:.3f}, "
          f"ECE {result['val_ece_before']:.4f} -> {result['val_ece']:.4f}, threshold {result['threshold']:.3f}")
    info = {k: v for k, v in sidecar.items() if k not in ("file", "threshold", *model.config)}
    info.update(temperature=result["temperature"], validation=result["val_at_threshold"],
                calibration={"val_ece_before": result["val_ece_before"], "val_ece": result["val_ece"],
                             "post_hoc": True, "git_commit": git_commit()})
    save_model(model, path, result["threshold"], info)
