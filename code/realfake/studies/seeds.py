"""How far does the training seed alone move the replication? The base and attention CNNs (the original recipe,
10 epochs) trained with seeds 0..N-1 on one validation split (seed 0's, the shipped models'), each scored on the
CIFAKE test set. The paper's replication section reads the result.

Seed 0 is the shipped models' own recipe and split, so its run retrains them (bit for bit on the same machine).

Its command: `python code/seeds.py` (--help lists the flags).
"""
import time
from dataclasses import replace

import numpy as np
import torch

from classes import load_cifake
from realfake.data.splits import split_train_val
from realfake.metrics import score_at_threshold
from realfake.models.inference import score_dataset
from realfake.project import git_commit
from realfake.training.loop import train_model
from realfake.training.recipes import SAMPLE_EPOCHS, SHIPPED_MODELS

MODELS = ("base_model", "attn_model")


def seed_runs(root, seeds, device="cpu", sample=False):
    """{model: {"runs": [{seed, accuracy, auroc, accuracy at val threshold, seconds}], mean and sd of each}}."""
    commit = git_commit()                      # the code as imported now, before any edit during a long run
    train, val = split_train_val(load_cifake(root, "train", verbose=False))
    test = load_cifake(root, "test", verbose=False)
    labels, results = test.labels.numpy(), {}
    for name in MODELS:
        spec, runs = SHIPPED_MODELS[name], []
        epochs = min(spec.recipe.epochs, SAMPLE_EPOCHS) if sample else spec.recipe.epochs
        for seed in seeds:
            started = time.perf_counter()
            model, history = train_model(train, val, replace(spec.recipe, seed=seed, epochs=epochs), spec.arch,
                                         spec.arch_kwargs, device, progress=False)
            seconds, scores = time.perf_counter() - started, score_dataset(model, test, device)
            at_half, at_val = (score_at_threshold(labels, scores, t) for t in (0.5, history["threshold"]))
            runs.append({"seed": seed, "accuracy": at_half["accuracy"], "auroc": at_half["auroc"],
                         "accuracy at val threshold": at_val["accuracy"], "seconds": round(seconds, 1)})
            print(f"{name}, seed {seed}: test accuracy {at_half['accuracy']:.2%} at 0.5, {at_val['accuracy']:.2%} at "
                  f"the validation threshold, AUROC {at_half['auroc']:.4f}; {seconds:.0f} s")
        summary = {}
        for key in ("accuracy", "auroc", "accuracy at val threshold"):
            values = np.array([run[key] for run in runs])
            summary.update({f"{key} mean": values.mean(), f"{key} sd": values.std(ddof=1) if len(values) > 1 else 0.0,
                            f"{key} min": values.min(), f"{key} max": values.max()})
        results[name] = {"epochs": epochs, "runs": runs, **summary}
    return {"seeds": len(seeds), "n_test": len(test), "n_train": len(train), "n_val": len(val), "split seed": 0,
            "device": str(device), "torch": torch.__version__, "commit": commit, "models": results}
