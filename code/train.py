"""Train a real-vs-fake detector on the CIFAKE training split.

    python code/train.py -ep 10 -mf base_model            # the original study's base model
    python code/train.py -ep 10 --attn -mf attn_model     # with the SRM attention layer
    python code/train.py -ep 1 --sample                   # a quick run on the generated sample data

A stratified, seeded validation split is carved from the training data; the decision threshold
stored with the model is chosen on it (maximal balanced accuracy), never on the test set.
"""
import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn as nn
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

import robustness
from classes import (ARCHITECTURES, Batcher, build_model, count_parameters, load_cifake, load_model, read_sidecar,
                     save_model, single_view)
from evaluate import choose_threshold, predict_scores, score_at_threshold
from project import (ProjectError, config_path, dataset_dir, fast_bfloat16, git_commit, model_path, pick_device,
                     seed_everything)

# Training recipes: every hyper-parameter in one place. All use BCEWithLogitsLoss; momentum and nesterov
# apply to SGD only (AdamW keeps its default betas).
RECIPES = {
    # The original study's, the default, for replication: batch 32, constant lr 0.001, momentum 0.9.
    "original": dict(optimizer="sgd", epochs=5, batch_size=32, lr=0.001, momentum=0.9, nesterov=False,
                     weight_decay=0.0, schedule="constant", label_smoothing=0.0, flip=False, shift=0, test_flip=False,
                     test_shift=0, amp=False),
    # Fast (base CNN): AdamW for three epochs at batch 256, one-cycle to lr 0.005, bfloat16 where that is fast
    # (chosen on validation among 10 settings of optimiser, epochs, batch, lr and precision; notes/results.md).
    "fast": dict(optimizer="adamw", epochs=3, batch_size=256, lr=0.005, momentum=0.9, nesterov=False,
                 weight_decay=0.01, schedule="onecycle", label_smoothing=0.0, flip=False, shift=0, test_flip=False,
                 test_shift=0, amp=True),
    # Strong (StrongCNN): the same schedule, longer, with weight decay, mild label smoothing, flips and 2-pixel
    # shifts (without shifts it fits the training split to 99.99% and stalls at 97.5% on validation), test-time
    # averaging over 10 views, the image, its 1-pixel shifts and their mirrors (+0.14 points on validation over
    # mirrors alone), in bfloat16 where that is fast: 30 epochs fit the 60-minute budget on a 2-core AVX512-BF16 CPU.
    # Choices and pilots: notes/results.md.
    "strong": dict(optimizer="sgd", epochs=30, batch_size=256, lr=0.1, momentum=0.9, nesterov=True,
                   weight_decay=5e-4, schedule="onecycle", label_smoothing=0.05, flip=True, shift=2, test_flip=True,
                   test_shift=1, amp=True),
}
DEFAULTS = dict(RECIPES["original"], seed=0, val_fraction=0.1)
ONE_CYCLE = dict(pct_start=0.25, div_factor=25.0, final_div_factor=1000.0, anneal_strategy="linear")

# The shipped models: what `python code/train.py -mf NAME ...` trains for each.
MODEL_RECIPES = {"base_model": ["-ep", "10"], "attn_model": ["-ep", "10", "--attn"], "mini_model": ["-ep", "1"],
                 "strong_model": ["--arch", "strong", "--recipe", "strong"]}


def cifake_root(data=None, sample=False):
    """The CIFAKE folder: --data if given, the generated sample with --sample, else config.json's."""
    return Path(data).resolve() if data else dataset_dir("CIFAKE_dir", sample)


def split_train_val(dataset, val_fraction=DEFAULTS["val_fraction"], seed=DEFAULTS["seed"]):
    """A stratified (label x content class), seeded hold-out: returns (train, validation) ImageSets."""
    strata = dataset.labels * 100 + (dataset.classes + 1 if dataset.classes is not None else 0)
    train_idx, val_idx = train_test_split(np.arange(len(dataset)), test_size=val_fraction,
                                          stratify=strata.numpy(), random_state=seed)
    return dataset.subset(np.sort(train_idx)), dataset.subset(np.sort(val_idx))


def dataset_fingerprint(dataset):
    """A short hash of a split's file contents, in order: two runs on the same data share it."""
    return f"{dataset.name}:{len(dataset)}:" + hashlib.sha1(dataset.digests.tobytes()).hexdigest()[:16]


def validate(model, val_set, device, loss_fn):
    scores = predict_scores(model, val_set.images, device)
    labels = val_set.labels.numpy()
    p = torch.from_numpy(scores).clamp(1e-7, 1 - 1e-7)
    loss = float(nn.functional.binary_cross_entropy(p, val_set.labels.float()))
    result = score_at_threshold(labels, scores, 0.5)
    return {"val_loss": loss, "val_accuracy": result["accuracy"], "val_auroc": result["auroc"]}, scores


def monitor(model, val_set, device, loss_fn):
    """Validation metrics for progress reports, on one view per image (test-time view averaging would
    cost up to 10x as much; the final validation, which picks the threshold, uses every view)."""
    with single_view(model):
        return validate(model, val_set, device, loss_fn)[0]


def make_optimizer(parameters, optimizer, lr, momentum, nesterov, weight_decay):
    if optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    raise ProjectError(f"unknown optimizer '{optimizer}' (sgd or adamw)")


def make_schedule(optimizer, schedule, total_steps):
    """None for a constant learning rate; for 'onecycle', linear warm-up over the first quarter of the steps
    from lr/25 to lr, then linear decay to lr/25,000 (stepped once per batch)."""
    if schedule == "constant":
        return None
    if schedule == "onecycle":
        peak = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total_steps,
                                                   cycle_momentum=False, **ONE_CYCLE)
    raise ProjectError(f"unknown schedule '{schedule}' (constant or onecycle)")


def train_model(train_set, val_set, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                lr=DEFAULTS["lr"], momentum=DEFAULTS["momentum"], arch="cnn", attn=False,
                seed=DEFAULTS["seed"], device="cpu", log_every=0, progress=True, amp=False, optimizer="sgd",
                nesterov=False, weight_decay=0.0, schedule="constant", label_smoothing=0.0, flip=False, shift=0,
                test_flip=False, test_shift=0, augment=(), model_kwargs=None):
    """Train with BCEWithLogitsLoss and SGD (or AdamW). Returns (model, history): history["epochs"] has the train
    loss and validation loss / accuracy / AUROC per epoch (on one view per image: `monitor`), history["steps"]
    (when log_every > 0) the running loss and accuracy and the validation accuracy every `log_every` batches, and
    history["threshold"] the validation-chosen threshold, history["amp"] whether bfloat16 was used. amp=True
    runs the forward pass in bfloat16 autocast where that is fast (project.fast_bfloat16), else float32.
    augment: any of "blur", "jpeg" (robustness.augment, redrawn each epoch). test_flip / test_shift and
    model_kwargs go to build_model (e.g. widths for `strong`). The defaults are the original recipe (RECIPES)."""
    device = torch.device(device)
    seed_everything(seed)
    model_kwargs = dict(model_kwargs or {}, **({"attn": attn} if arch == "cnn" else {}))
    if test_flip or test_shift:
        if arch != "strong":
            raise ProjectError("test_flip and test_shift (test-time view averaging) are options of --arch strong only")
        model_kwargs.update(test_flip=test_flip, test_shift=test_shift)
    # channels-last convolutions are 1.3-1.5x faster on CPU (oneDNN), for both networks (notes/results.md)
    model = build_model(arch, **model_kwargs).to(device, memory_format=torch.channels_last)
    amp = amp and fast_bfloat16(device)
    batches = Batcher(train_set.images, train_set.labels, batch_size, device, shuffle=True, seed=seed, flip=flip,
                      shift=shift)
    optimizer = make_optimizer(model.parameters(), optimizer, lr, momentum, nesterov, weight_decay)
    scheduler = make_schedule(optimizer, schedule, epochs * len(batches))
    loss_fn = nn.BCEWithLogitsLoss()
    history = {"epochs": [], "steps": [], "amp": amp}
    step, seen = 0, 0
    for epoch in range(1, epochs + 1):
        if augment:                                    # a fresh draw of blurred / re-compressed images each epoch
            batches = Batcher(robustness.augment(train_set.images, augment, seed=seed * 1000 + epoch),
                              train_set.labels, batch_size, device, shuffle=True, seed=seed * 1000 + epoch, flip=flip,
                              shift=shift)
        model.train()
        started = time.perf_counter()
        epoch_loss = torch.zeros((), device=device)
        window_loss, window_correct, window_n = 0.0, 0, 0
        for x, y in tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", leave=False, disable=not progress):
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                logits = model(x.contiguous(memory_format=torch.channels_last)).float()
            loss = loss_fn(logits, y * (1 - label_smoothing) + 0.5 * label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            epoch_loss += loss.detach() * len(y)      # stays on the device: no sync per batch
            step, seen = step + 1, seen + len(y)
            if log_every:                              # learning-curve logging (syncs every batch)
                window_loss += loss.item() * len(y)
                window_correct += int(((logits > 0) == (y > 0.5)).sum())
                window_n += len(y)
            if log_every and step % log_every == 0:
                metrics = monitor(model, val_set, device, loss_fn)
                history["steps"].append({"step": step, "images_seen": seen, "loss": window_loss / window_n,
                                         "accuracy": window_correct / window_n, **metrics})
                window_loss, window_correct, window_n = 0.0, 0, 0
                model.train()
        metrics = monitor(model, val_set, device, loss_fn)
        record = {"epoch": epoch, "train_loss": float(epoch_loss) / len(train_set), **metrics,
                  "seconds": time.perf_counter() - started}
        history["epochs"].append(record)
        if progress:
            print(f"epoch {epoch}/{epochs}: train loss {record['train_loss']:.4f} | val loss {metrics['val_loss']:.4f} "
                  f"acc {metrics['val_accuracy']:.4f} AUROC {metrics['val_auroc']:.4f} | {record['seconds']:.1f} s")
    _, scores = validate(model, val_set, device, loss_fn)
    history["threshold"] = choose_threshold(val_set.labels.numpy(), scores)
    history["val_at_threshold"] = score_at_threshold(val_set.labels.numpy(), scores, history["threshold"])
    return model.eval(), history


def model_file(name, sample=False):
    """Where a study model lives: models/ (config.json) for real data, data/sample/models/ for the sample."""
    return config_path("sample_dir") / "models" / f"{name}.pth" if sample else model_path(name)


def train_or_load(name, sample=False, retrain=False, device="cpu"):
    """One of the study's models (MODEL_RECIPES): loaded from its file, or trained by train.py's own
    main() with its recipe when the file is missing or `retrain` is set. Returns (model, sidecar dict)."""
    path = model_file(name, sample)
    if retrain or not path.is_file():
        print(f"training {name} ({' '.join(MODEL_RECIPES[name])}{' --sample' if sample else ''}) ...")
        main([*MODEL_RECIPES[name], "-mf", str(path), "--device", str(device)] + (["--sample"] if sample else []))
    model, _ = load_model(path, device)
    return model, read_sidecar(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=RECIPES, default="original",
                        help="hyper-parameter set (see RECIPES); the flags below override its values")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="cnn", help="cnn (the study's) or strong")
    parser.add_argument("-bs", "--batch_size", type=int)
    parser.add_argument("-ep", "--epochs", type=int)
    parser.add_argument("-mf", "--modelfile", help="save to models/<name>.pth (only when given)")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"])
    parser.add_argument("-lr", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--attn", action="store_true", help="add the SRM channel-attention layer (arch cnn)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--val-fraction", type=float, default=DEFAULTS["val_fraction"])
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
    parser.add_argument("--data", help="CIFAKE folder (default: config.json's CIFAKE_dir)")
    parser.add_argument("--sample", action="store_true", help="use the generated sample data (a stand-in)")
    parser.add_argument("--augment", default="", help="train-time augmentation: blur, jpeg or blur,jpeg")
    parser.add_argument("--shift", type=int, metavar="K",
                        help="train-time random shifts of up to K pixels (2 in the strong recipe, 0 elsewhere)")
    parser.add_argument("--widths", type=lambda text: tuple(int(w) for w in text.split(",")), metavar="W1,W2,W3",
                        help="channel widths of the strong network's three stages (default 32,64,112)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction,
                        help="bfloat16 autocast where it is fast (CUDA, or a CPU with AVX512-BF16/AMX); "
                             "on in the strong recipe")
    parser.add_argument("--log-every", type=int, default=0, metavar="N",
                        help="log loss, running and validation accuracy every N batches")
    args = parser.parse_args(argv)
    recipe = dict(RECIPES[args.recipe])
    recipe.update({k: v for k, v in vars(args).items() if k in recipe and v is not None})
    augment = tuple(a for a in args.augment.split(",") if a)
    if set(augment) - {"blur", "jpeg"}:
        raise ProjectError(f"--augment takes blur and/or jpeg, got '{args.augment}'")
    if args.widths and (args.arch != "strong" or len(args.widths) != 3):
        raise ProjectError("--widths takes three comma-separated widths, with --arch strong only")

    device = pick_device(args.device)
    dataset = load_cifake(cifake_root(args.data, args.sample), "train")
    if args.sample:
        print("NOTE: sample data: generated stand-in images, not CIFAKE; figures are for testing only")
    train_set, val_set = split_train_val(dataset, args.val_fraction, args.seed)
    print(f"training on {len(train_set)} images, validating on {len(val_set)}, device {device}, "
          f"torch {torch.__version__}")
    started = time.perf_counter()
    print(f"recipe {args.recipe}: " + ", ".join(f"{k} {v}" for k, v in recipe.items()))
    model, history = train_model(train_set, val_set, arch=args.arch, attn=args.attn, seed=args.seed, device=device,
                                 log_every=args.log_every, augment=augment,
                                 model_kwargs={"widths": args.widths} if args.widths else None, **recipe)
    wall = time.perf_counter() - started
    val = history["val_at_threshold"]
    print(f"validation: threshold {history['threshold']:.3f} (max balanced accuracy), accuracy {val['accuracy']:.4f}, "
          f"AUROC {val['auroc']:.4f}; {wall:.0f} s")
    if args.modelfile:
        path = model_path(args.modelfile)
        info = {"parameters": count_parameters(model), "recipe": args.recipe, **recipe,
                "loss": "BCEWithLogitsLoss", "augment": list(augment), "seed": args.seed, "amp": history["amp"],
                "val_fraction": args.val_fraction, "sample_data": args.sample,
                "dataset": dataset_fingerprint(train_set), "n_train": len(train_set), "n_val": len(val_set),
                "validation": val, "history": history["epochs"], "steps": history["steps"],
                "device": str(device), "torch": torch.__version__, "git_commit": git_commit(),
                "wall_seconds": round(wall, 1)}
        save_model(model, path, history["threshold"], info)
        print(f"saved {path} and {path.with_suffix('.json').name}")
    return model, history


if __name__ == "__main__":
    try:
        main()
    except ProjectError as e:
        sys.exit(f"error: {e}")
