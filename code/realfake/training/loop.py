"""The training loop: one run of a Recipe on a training and a validation split, then the calibration chosen on
validation (temperature, threshold: maximal balanced accuracy, never on the test set); training and saving a shipped
model (or loading it when it exists), and the pretrained backbone's detectors.

    from realfake.training.loop import train_model
    from realfake.training.recipes import RECIPES
    model, history = train_model(train_set, val_set, RECIPES["fast"])

`python code/train.py` is the command-line front; the notebooks and `reproduce.py` call the same functions."""
import hashlib
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from classes import has_agiri_train, load_cifake
from realfake.data import perturb
from realfake.data.batcher import Batcher
from realfake.data.datasets import generator_folders
from realfake.data.perturb import jitter_colour, shuffle_patches
from realfake.data.splits import VAL_FRACTION, split_train_val
from realfake.metrics import calibration_figures, score_at_threshold
from realfake.models.checkpoints import load_model, read_sidecar, save_model
from realfake.models.inference import predict_logits, predict_scores
from realfake.models.networks import build_model, count_parameters, single_view
from realfake.project import (
    ProjectError,
    absolute,
    check_writable,
    cifake_root,
    dataset_dir,
    fast_bfloat16,
    git_commit,
    model_file,
    seed_everything,
    shown,
)
from realfake.training import photos, pretrained
from realfake.training.distributed import SINGLE, wrap
from realfake.training.pools import epoch_rows, training_pool
from realfake.training.recipes import ONE_CYCLE, PRETRAINED_FIELDS, RECIPES, SAMPLE_EPOCHS, SHIPPED_MODELS


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
        fakes_per_epoch = {}
        if recipe.train_fakes != ("cifake",):         # a benchmark mix: one epoch's rows of the pool, as drawn
            pool, source_of = training_pool(train_set, recipe, generator_dirs, device, progress)
            rows = np.sort(epoch_rows(source_of, recipe, 1))
            train_set, fakes = pool.subset(rows), source_of[rows]
            fakes_per_epoch = dict(zip(recipe.train_fakes, np.bincount(fakes[fakes >= 0],
                                                                       minlength=len(recipe.train_fakes)).tolist()))
        model, history = pretrained.fit_cifake(train_set, val_set, **(arch_kwargs or {}), device=device,
                                               seed=recipe.seed)
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


def full_size_root(sample=False):
    """Where the full-size detector learns AGIRI: its own train/ and test/ folders when `get_data.py agiri --train`
    kept them, else the 224 px train subset (the stand-in this repo's figures were made with)."""
    agiri = dataset_dir("AGIRI_dir", sample)
    return agiri if has_agiri_train(agiri) else dataset_dir("agiri_subset_dir", sample)


def train_pretrained(dataset, path, data=None, sample=False, backbone="efficientnet-lite0", image_size=None,
                     finetune=None, seed=0, device="cpu"):
    """A detector on the pretrained backbone, saved to `path` (None: not saved): the full-size detector on the AGIRI
    train subset (`dataset` "agiri": pretrained.fit_agiri), on it and the real photographs ("photos":
    photos.fit_photos, judged beside agiri_model) or CIFAKE's (pretrained.fit_cifake, through
    train_and_save), with strong_model's validation AUROC as the bar it must beat to ship."""
    if path is not None:
        check_writable(path)
    def save(model, threshold, info):
        if path is not None:
            save_model(model, path, threshold, {**info, "sample_data": sample})
            print(f"saved {shown(path)} and {path.with_suffix('.json').name}")

    if dataset == "agiri":
        root = absolute(data) if data else full_size_root(sample)
        pretrained.fit_agiri(root, dataset_dir("faces_dir", sample), cifake_root(None, sample),
                             dataset_dir("ddpm32_dir", sample), backbone, image_size or 224, finetune, seed, device,
                             save)
        return
    if dataset == "photos":
        if finetune:
            raise ProjectError("--dataset photos trains linear probes only (photos.py): drop --finetune")
        root = absolute(data) if data else dataset_dir("agiri_subset_dir", sample)
        photos.fit_photos(root, dataset_dir("reals_photos_dir", sample), dataset_dir("faces_dir", sample),
                          cifake_root(None, sample), dataset_dir("ddpm32_dir", sample),
                          model_file("agiri_model", sample), backbone, image_size or 224, seed, device, save)
        return
    strong = read_sidecar(model_file("strong_model", sample)).get("validation", {})
    baseline = {"model": "strong_model", "validation AUROC": strong["auroc"]} if "auroc" in strong else None
    train_and_save(replace(RECIPES["pretrained"], seed=seed), "pretrained",
                   {"backbone": backbone, "image_size": image_size, "finetune": finetune, "baseline": baseline},
                   cifake_root(data, sample), path, device, sample)


SAMPLE_IMAGE_SIZE = 32          # the sample data's backbone input: a smoke test of the pipeline, not of the figures


def train_sample_pretrained(dataset, path):
    """A pretrained-backbone detector on the sample data (`dataset` cifake or agiri) at SAMPLE_IMAGE_SIZE, saved to
    `path`: what reproduce.py and matrix.py --sample train when the file is missing."""
    train_pretrained(dataset, Path(path), sample=True, image_size=SAMPLE_IMAGE_SIZE)
