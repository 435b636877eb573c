"""Detectors on the frozen pretrained backbone (backbone.py): a linear probe, or the last blocks fine-tuned.

    python code/train.py --arch pretrained --dataset agiri -mf agiri_model      # the full-size detector (fit_agiri)
    python code/train.py --arch pretrained -mf pretrained_model      # CIFAKE: probes or a fine-tune (fit_cifake)

The AGIRI detector is validated in this order, so that nothing is chosen on the images it is judged on:
1. byte-identical and near-identical images (difference hash within NEAR_DUPLICATE_BITS bits) are grouped;
2. a stratified HELD_OUT_FRACTION of the groups is held out before anything else is done;
3. every choice (`choices()`: feature taps, augmentation, regularisation, fine-tuning) is made by CV_FOLDS-fold
   grouped cross-validation on the rest, on the out-of-fold AUROC of the JPEG fakes against the reals (the fakes'
   PNG files would otherwise let the file format speak); the temperature and threshold come from the same
   out-of-fold scores;
4. the final model is trained on the whole rest; then the held-out fold is scored once, rules.FULL_SIZE_SHIPPING_RULE
   (fixed in code before any fold was scored) gives the verdict, the transfer sets are scored, and the model is saved
   with it all.
Every training image is re-encoded as JPEG at a random quality in each of its AUGMENT_COPIES copies (the
frozen-backbone form of "a new augmentation each epoch"), so the PNG/JPEG difference cannot be learnt.
"""
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from classes import has_agiri_train, load_agiri, load_cifake
from realfake import FAKE, REAL
from realfake.data import perturb
from realfake.data.datasets import load_fakes
from realfake.data.duplicates import NEAR_DUPLICATE_BITS, duplicate_groups
from realfake.data.file_facts import facts_of
from realfake.data.inputs import normalise
from realfake.data.splits import HELD_OUT_FRACTION, held_out_split
from realfake.metrics import (
    bootstrap_intervals,
    calibration_figures,
    figures_with_intervals,
    probability,
    rank_auroc,
)
from realfake.models.backbone import (
    TAP_WIDTHS,
    TAPS,
    TUNABLE_BLOCKS,
    FeatureCache,
    PretrainedDetector,
    build_backbone,
    image_keys,
    pixel_digests,
)
from realfake.project import ProjectError, dataset_dir, git_commit, seed_everything
from realfake.rules import CIFAKE_SHIPPING_RULE, FULL_SIZE_SHIP_AT_LEAST, FULL_SIZE_SHIPPING_RULE

CV_FOLDS = 5                        # grouped, stratified folds of the rest: every choice is made on them
AUGMENT_COPIES = 3                  # augmented copies of each training image whose features are cached
JPEG_QUALITY = (50, 100)            # every copy is re-encoded as JPEG at a quality drawn from this range
BLUR_SIGMA, RESCALE = (0.1, 3.0), (0.5, 1.0)   # CNNDetection's blur (sigma, pixels) and a down-and-up resize
AUGMENTS = ("jpeg", "cnndetection")  # jpeg alone; or with blur and resize, each with probability 0.5
PHOTO_CHAIN = dict(blur_p=0.3, blur_sigma=(0.3, 1.2), downscale=(0.35, 1.0), jpeg_p=0.8)   # "photo" (photos.py)
FEATURE_SETS = {"head": ("head",), "last two": ("stage7", "head"), "all depths": tuple(TAPS)}
C_VALUES = (0.01, 0.1, 1.0)         # inverse L2 strength of the logistic regression on standardised features
PROBE_C = 0.1                       # the CIFAKE probe's C (fit_cifake): tens of thousands of images need little else
CIFAKE_SIZES = (32, 64, 96)         # input sizes (upsampled from 32 px) the CIFAKE probe tries; larger cost more
CIFAKE_FINETUNE = dict(blocks=(1, 2), epochs=2, batch_size=256)   # at the best probe's size (fit_cifake)
FINETUNE = dict(blocks=1, epochs=6, batch_size=64, lr=3e-4, head_lr=3e-3, weight_decay=0.01)


# ----------------------------------------------------------------------------------------------
# Augmentation: what each cached copy of a training image is

def augment_copy(image, digest, kind, copy, seed=0):
    """One augmented copy of a uint8 3 x H x W image, drawn from (seed, file digest, kind, copy): the same every
    run. Always re-encoded as JPEG last; "cnndetection" first blurs and resizes down and up, each with p = 0.5.
    "photo" is what photographs meet on their way to a user (PHOTO_CHAIN): a mild blur sometimes, a downscale by a
    random factor always, then JPEG at a random quality or (1 - jpeg_p) none."""
    rng = np.random.default_rng([seed, int(digest), (*AUGMENTS, "photo").index(kind), copy])
    x = image[None]
    if kind == "photo":
        chain = PHOTO_CHAIN
        if rng.random() < chain["blur_p"]:
            x = perturb.blur(x, float(rng.uniform(*chain["blur_sigma"])))
        x = perturb.rescale(x, max(8, round(x.shape[-1] * rng.uniform(*chain["downscale"]))))
        return perturb.jpeg(x, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))[0] \
            if rng.random() < chain["jpeg_p"] else x[0]
    if kind == "cnndetection":
        if rng.random() < 0.5:
            x = perturb.blur(x, float(rng.uniform(*BLUR_SIGMA)))
        if rng.random() < 0.5:
            x = perturb.rescale(x, max(8, round(x.shape[-1] * rng.uniform(*RESCALE))))
    return perturb.jpeg(x, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))[0]


def copies_of(dataset, pixels, index, kind, seed=0):
    """(cache keys, make_images) for the AUGMENT_COPIES copies of the images at `index`, copy-major; `pixels`: the
    dataset's pixel digests (the keys), its file digests seed each copy's draw."""
    keys, rows = [], []
    for copy in range(AUGMENT_COPIES):
        keys += image_keys(pixels[index], f"{kind}{seed}:{copy}")
        rows += [(i, copy) for i in index]
    make = lambda wanted: torch.stack([augment_copy(dataset.images[rows[w][0]], dataset.digests[rows[w][0]], kind,
                                                    rows[w][1], seed) for w in wanted])
    return keys, make


# ----------------------------------------------------------------------------------------------
# Features and heads

class Features:
    """Cached backbone outputs of one dataset: clean images and augmented copies, pooled (taps) or as fronts."""

    def __init__(self, backbone, dataset, image_size, device="cpu", seed=0):
        self.backbone, self.dataset, self.image_size, self.device = backbone, dataset, image_size, device
        self.seed, self.backbone_name, self.caches = seed, backbone.name, {}
        self.pixels = pixel_digests(dataset.images)   # the cache's keys: what the backbone is given

    def cache(self, tuned):
        """The cache of pooled features (tuned = 0) or of activations before the last `tuned` blocks, read once."""
        if tuned not in self.caches:
            self.caches[tuned] = FeatureCache(self.backbone, self.image_size, tuple(TAPS), tuned, device=self.device)
        return self.caches[tuned]

    def clean(self, index, tuned=0):
        """Pooled features (tuned = 0) or the activations before the last `tuned` blocks of the images at `index`."""
        return self.cache(tuned).get(image_keys(self.pixels[index]), lambda w: self.dataset.images[index[w]],
                                     desc=f"{self.dataset.name}")

    def augmented(self, index, kind, tuned=0):
        """Features (as `clean`) of every copy, and the label of each row."""
        keys, make = copies_of(self.dataset, self.pixels, index, kind, self.seed)
        values = self.cache(tuned).get(keys, make, desc=f"{self.dataset.name}, {kind} copies")
        return values, np.tile(self.dataset.labels.numpy()[index], AUGMENT_COPIES)


def tap_columns(taps):
    """Column indices of `taps` in features pooled from every tap (in TAPS order)."""
    starts = np.cumsum([0] + [TAP_WIDTHS[t] for t in TAPS])
    where = dict(zip(TAPS, starts))
    return np.concatenate([np.arange(where[t], where[t] + TAP_WIDTHS[t]) for t in taps])


def fit_probe(features, labels, taps, C, seed=0, weights=None):
    """A logistic regression on standardised features of `taps` (each row weighted by `weights`, if given):
    (weights, bias, mean, std) as tensors."""
    x = features[:, tap_columns(taps)].double().numpy()
    mean, std = x.mean(0), x.std(0) + 1e-6
    fit = LogisticRegression(C=C, max_iter=3000, random_state=seed).fit((x - mean) / std, labels, sample_weight=weights)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)
    return as_tensor(fit.coef_[0]), as_tensor(fit.intercept_), as_tensor(mean), as_tensor(std)


def probe_model(backbone_name, image_size, taps, probe, **kwargs):
    """A PretrainedDetector (built with `kwargs`) whose head is a fitted probe."""
    model = PretrainedDetector(backbone_name, image_size, taps, **kwargs)
    weights, bias, mean, std = probe
    with torch.no_grad():
        model.head.weight.copy_(weights[None])
        model.head.bias.copy_(bias)
        model.feature_mean.copy_(mean)
        model.feature_std.copy_(std)
    return model.eval()


def finetune_model(backbone_name, image_size, fronts, labels, seed=0, progress=False, epochs=FINETUNE["epochs"],
                   blocks=FINETUNE["blocks"], batch_size=FINETUNE["batch_size"]):
    """A PretrainedDetector with its last `blocks` blocks, head conv and logit trained (AdamW, batch norm statistics
    frozen) on cached fronts (the activations before those blocks) of augmented copies."""
    seed_everything(seed)
    k = blocks
    model = PretrainedDetector(backbone_name, image_size, ("head",), finetune=k)
    tail = model.backbone.tail_parameters(k)
    optimizer = torch.optim.AdamW([{"params": tail, "lr": FINETUNE["lr"]},
                                   {"params": model.head.parameters(), "lr": FINETUNE["head_lr"]}],
                                  weight_decay=FINETUNE["weight_decay"])
    y = torch.as_tensor(labels, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    model.eval()                                       # batch norm keeps ImageNet's statistics: 1,400 images are few
    for _ in tqdm(range(epochs), desc="fine-tuning", disable=not progress, leave=False):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            logits = model.head_logit(model.backbone.tail(fronts[batch].float(), k))
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.inference_mode()
def logits_from(model, pooled=None, fronts=None, batch_size=256):
    """A PretrainedDetector's logits from cached pooled features (probe) or fronts (fine-tuned): what its forward
    pass gives on the images they were computed from. Fronts go through the tail in batches: its 1,152-channel
    expansion of 10,000 fronts at once would take over 10 GB."""
    if model.finetune:
        return np.concatenate([model.head_logit(model.backbone.tail(fronts[i:i + batch_size].float(),
                                                                    model.finetune)).numpy()
                               for i in range(0, len(fronts), batch_size)]) if len(fronts) else np.zeros(0)
    return model.head_logit(pooled[:, tap_columns(model.taps)]).numpy()


# ----------------------------------------------------------------------------------------------
# Cross-validation of every choice

@dataclass(frozen=True)
class Choice:
    """One configuration cross-validated: feature taps, augmentation, C (probe) or fine-tuning."""
    features: str = "head"
    augment: str = "jpeg"
    C: float = 0.1
    finetune: int = 0

    @property
    def name(self):
        head = f"fine-tune last {self.finetune} block(s)" if self.finetune else f"probe C={self.C:g}"
        return f"{head}, {self.features}, {self.augment}"


def choices(finetune=None):
    """Every probe configuration, then fine-tuning FINETUNE["blocks"] blocks (on JPEG copies); `finetune` fixes the
    choice: 0 a probe (every probe configuration), N > 0 fine-tuning the last N blocks."""
    if finetune is not None and not 0 <= finetune <= TUNABLE_BLOCKS:
        raise ProjectError(f"--finetune takes 0 to {TUNABLE_BLOCKS} blocks (the last ones, at 7 x 7), got {finetune}")
    probes = [Choice(f, a, c) for f in FEATURE_SETS for a in AUGMENTS for c in C_VALUES]
    tuned = [Choice("head", "jpeg", 0.0, finetune or FINETUNE["blocks"])]
    return probes if finetune == 0 else tuned if finetune else probes + tuned


def jpeg_mask(labels, formats):
    """The images kept for the format-proof figure: every real and the fakes stored as JPEG."""
    return (labels == REAL) | (np.asarray(formats) == "JPEG")


def cross_validate(features, index, formats, options, image_size, seed=0):
    """Out-of-fold logits of every option on the images at `index`: {option: logits in index order}, and the
    folds' table (AUROC of all fakes and of JPEG fakes, pooled over the folds)."""
    labels = features.dataset.labels.numpy()[index]
    groups = features.dataset.groups[index]
    folds = list(StratifiedGroupKFold(CV_FOLDS, shuffle=True, random_state=seed).split(index, labels, groups))
    jpeg = jpeg_mask(labels, formats[index])
    oof, rows = {}, {}
    for option in tqdm(options, desc="cross-validating", unit="choice"):
        logits = np.zeros(len(index))
        for fit, held in folds:
            if option.finetune:
                fronts, y = features.augmented(index[fit], option.augment, option.finetune)
                model = finetune_model(features.backbone_name, image_size, fronts, y, seed, blocks=option.finetune)
                logits[held] = logits_from(model, fronts=features.clean(index[held], option.finetune))
            else:
                pooled, y = features.augmented(index[fit], option.augment)
                model = probe_model(features.backbone_name, image_size, FEATURE_SETS[option.features],
                                    fit_probe(pooled, y, FEATURE_SETS[option.features], option.C, seed))
                logits[held] = logits_from(model, pooled=features.clean(index[held]))
        oof[option] = logits
        rows[option.name] = {"AUROC, JPEG fakes": float(rank_auroc(labels[jpeg], logits[jpeg])),
                             "AUROC, all fakes": float(rank_auroc(labels, logits))}
    return oof, rows


# ----------------------------------------------------------------------------------------------
# The AGIRI detector, end to end

def agiri_training_set(root):
    """(images, index where the held-out test images start, or None): AGIRI's train split then its test split where
    `root` holds both (has_agiri_train), else the one folder (the 224 px subset), a fold of which is held out."""
    if not has_agiri_train(root):
        return load_agiri(root, preprocess="full", name="AGIRI train subset, 224 px, re-saved"), None
    train = load_agiri(root, preprocess="full", name="AGIRI train split", split="train")
    test = load_agiri(root, preprocess="full", name="AGIRI test split", split="test")
    return train.join(test, "AGIRI, train and test splits"), len(train)


def fit_agiri(root, faces_root=None, cifake_root=None, ddpm32_root=None, backbone_name="efficientnet-lite0",
              image_size=224, finetune=None, seed=0, device="cpu", save=None):
    """Train, validate and (with `save(model, threshold, info)`) save the AGIRI detector; then score its held-out
    fold and the transfer sets. Returns (model, the sidecar's info: every figure, the choices, the rule's verdict)."""
    started, commit = time.perf_counter(), git_commit()          # the tree the fit starts from
    seed_everything(seed)
    data, test_from = agiri_training_set(root)
    if min((data.labels == label).sum() for label in (REAL, FAKE)) < 2 * CV_FOLDS:
        raise ProjectError(f"{root.name}: too few images of a class to hold out a fold and cross-validate "
                           f"({data.report.summary()}); need at least {2 * CV_FOLDS} real and {2 * CV_FOLDS} fake")
    formats = np.array([f.get("format") for f in facts_of([str(root / s) for s in data.sources])])
    data.groups = duplicate_groups(data.images, data.digests)
    labels = data.labels.numpy()
    if test_from is None:
        train, held_out = held_out_split(labels, data.groups, seed=seed)
    else:                                   # AGIRI's own split: its test folder is the held-out set
        train, held_out = np.arange(test_from), np.arange(test_from, len(data))
    n_groups = len(np.unique(data.groups))
    print(f"{len(data)} images in {n_groups} duplicate groups ({len(data) - n_groups} images join another); "
          f"held out {len(held_out)} ({int((labels[held_out] == FAKE).sum())} fake), cross-validating on {len(train)}")
    features = Features(build_backbone(backbone_name), data, image_size, device, seed)
    options = choices(finetune)
    oof, cv_rows = cross_validate(features, train, formats, options, image_size, seed)
    best = max(options, key=lambda o: cv_rows[o.name]["AUROC, JPEG fakes"])    # ties: the first, the simplest
    cv_seconds = time.perf_counter() - started
    print(f"chosen on {CV_FOLDS}-fold CV: {best.name} (out-of-fold AUROC, JPEG fakes "
          f"{cv_rows[best.name]['AUROC, JPEG fakes']:.4f})")

    # temperature and threshold from the chosen option's out-of-fold scores
    calibrated = calibration_figures(labels[train], oof[best])
    temperature, threshold = calibrated["temperature"], calibrated["threshold"]

    # the final model, on every training image
    if best.finetune:
        fronts, y = features.augmented(train, best.augment, best.finetune)
        model = finetune_model(backbone_name, image_size, fronts, y, seed, progress=True, blocks=best.finetune)
    else:
        pooled, y = features.augmented(train, best.augment)
        taps = FEATURE_SETS[best.features]
        model = probe_model(backbone_name, image_size, taps, fit_probe(pooled, y, taps, best.C, seed))
    model.temperature = temperature
    info = {"dataset": data.name, "data_dir": str(root.name), "report": data.report.summary(),
            "n_images": len(data), "duplicate groups": n_groups, "near-duplicate bits": NEAR_DUPLICATE_BITS,
            "held_out": {"fraction": HELD_OUT_FRACTION if test_from is None else "AGIRI's test split", "seed": seed,
                         "files": [data.sources[i] for i in held_out]},
            "n_train": len(train), "n_held_out": len(held_out), "cv_folds": CV_FOLDS,
            "augment copies": AUGMENT_COPIES, "jpeg quality": list(JPEG_QUALITY), "choice": best.name,
            "cross-validation": cv_rows, "finetune settings": FINETUNE,
            "validation": {**calibrated["val_at_threshold"], "source": f"out-of-fold scores of {CV_FOLDS}-fold CV"},
            "temperature": temperature, "calibration": {k: calibrated[k] for k in ("val_ece_before", "val_ece")},
            "shipping rule": FULL_SIZE_SHIPPING_RULE, "seconds to choose (CV)": round(cv_seconds, 1),
            "device": str(device), "torch": torch.__version__, "git_commit": commit}
    info["held-out"] = held_out_figures(model, features, held_out, formats, threshold)
    auroc_jpeg = info["held-out"]["JPEG fakes"]["auroc"]
    info["ships"] = bool(auroc_jpeg >= FULL_SIZE_SHIP_AT_LEAST)
    print(f"held-out fold: AUROC {info['held-out']['all fakes']['auroc']:.4f} (all fakes), {auroc_jpeg:.4f} (JPEG "
          f"fakes alone); {'ships' if info['ships'] else 'does not ship'} by the rule (at least "
          f"{FULL_SIZE_SHIP_AT_LEAST})")
    info["transfer"] = transfer_figures(model, faces_root, cifake_root, ddpm32_root, device)
    info["wall_seconds"] = round(time.perf_counter() - started, 1)
    if save is not None:
        save(model, threshold, info)
    return model, info


def held_out_figures(model, features, held_out, formats, threshold):
    """The held-out fold's AUROC, AP and accuracy with 95% intervals, on all fakes and on JPEG fakes alone, and the
    format test (`format_test`)."""
    data = features.dataset
    labels = data.labels.numpy()[held_out]
    pooled = None if model.finetune else features.clean(held_out)
    fronts = features.clean(held_out, model.finetune) if model.finetune else None
    scores = probability(logits_from(model, pooled, fronts), model.temperature)
    keep = jpeg_mask(labels, formats[held_out])
    return {"all fakes": figures_with_intervals(labels, scores, threshold),
            "JPEG fakes": figures_with_intervals(labels[keep], scores[keep], threshold),
            "format test": format_test(model, data.subset(held_out), formats[held_out], threshold)}


FORMAT_TEST_QUALITY = 75            # the quality the subset's JPEGs were saved at


def format_test(model, data, formats, threshold):
    """Does the file format carry the score? The PNG fakes saved as JPEG at FORMAT_TEST_QUALITY, and the reals saved
    again at that quality (a second JPEG pass, which a user's photograph may meet too): per set, the mean change in
    P(real), the share whose call at `threshold` flips, and the AUROC of all fakes against the reals before and after
    (a PNG re-save would keep every pixel: 0 by construction, so it is not a test)."""
    labels = data.labels.numpy()
    before = probability(model_logits(model, data.images), model.temperature)
    result = {}
    for name, index in (("PNG fakes saved as JPEG", np.flatnonzero((labels == FAKE) & (formats == "PNG"))),
                        ("reals saved again as JPEG", np.flatnonzero(labels == REAL))):
        if not len(index):
            continue
        after = before.copy()
        after[index] = probability(model_logits(model, perturb.jpeg(data.images[index], FORMAT_TEST_QUALITY)),
                                   model.temperature)
        result[name] = {"n": len(index), "quality": FORMAT_TEST_QUALITY,
                        "mean change in P(real)": float((after[index] - before[index]).mean()),
                        "calls flipped": float(((after[index] >= threshold) != (before[index] >= threshold)).mean()),
                        "AUROC before": float(rank_auroc(labels, before)),
                        "AUROC after": float(rank_auroc(labels, after))}
    return result


def held_out_root(sidecar, sample=False):
    """The folder a full-size model's held-out files lie in: the one its sidecar names (AGIRI's own folder when it
    trained on AGIRI's train split, else the 224 px subset)."""
    folders = [dataset_dir(key, sample) for key in ("AGIRI_dir", "agiri_subset_dir")]
    return next((f for f in folders if f.name == sidecar.get("data_dir")), folders[1])


def load_held_out(sidecar, root):
    """The held-out fold a full-size model's sidecar names, decoded from `root`, and each file's format. Refuses in
    one line when a file is missing or the folder is not the one the model was trained on."""
    data = load_agiri(root, preprocess=sidecar.get("decoding", "full"), name=f"{sidecar['dataset']}, held-out fold")
    where = {source: i for i, source in enumerate(data.sources)}
    missing = [f for f in sidecar["held_out"]["files"] if f not in where]
    if missing:
        raise ProjectError(f"{len(missing)} of the {len(sidecar['held_out']['files'])} held-out files of "
                           f"{sidecar['file']} are not readable in {root} (first: {missing[0]}); give the folder it "
                           f"was trained on with --data")
    index = [where[f] for f in sidecar["held_out"]["files"]]
    held = data.subset(index)
    training = np.setdiff1d(np.arange(len(data)), index)
    if np.isin(held.digests, data.digests[training]).any():
        raise ProjectError(f"{root}: a held-out file is byte-identical to a training file; the fold was not made here")
    return held, np.array([f.get("format") for f in facts_of([str(root / s) for s in held.sources])])


def cached_logits(model, data, device="cpu"):
    """A PretrainedDetector's logits on an ImageSet through the feature cache (the packaged backbone's frozen part,
    as transfer_figures reads it): what its forward pass gives, computed once per image and setting."""
    features = Features(build_backbone(model.backbone.name), data, model.image_size, device)
    index = np.arange(len(data))
    if model.finetune:
        return logits_from(model, fronts=features.clean(index, model.finetune))
    return logits_from(model, pooled=features.clean(index))


@torch.inference_mode()
def model_logits(model, images, batch_size=32):
    """Logits of uint8 images straight through the model (no cache)."""
    return np.concatenate([model(normalise(images[i:i + batch_size])).float().numpy()
                           for i in range(0, len(images), batch_size)]) if len(images) else np.zeros(0)


def transfer_figures(model, faces_root, cifake_root, ddpm32_root, device="cpu"):
    """AUROC (with its 95% bootstrap interval: these sets hold 100 and 129 fakes) and AP of the model on sets it
    never trained on, with AP's base rate (the share of reals, REAL being the positive class, what a model that
    knows nothing scores): DDPM faces vs CelebA-HQ (256 px) and DDPM-32 vs CIFAKE's test reals (32 px, upsampled);
    features through the cache, computed by the packaged backbone (the frozen part, which fine-tuning leaves as it
    is). {} for a set that is not there."""
    sets = {}
    if faces_root is not None and faces_root.is_dir():
        sets["faces"] = load_agiri(faces_root, preprocess="full", name="faces")
    if cifake_root is not None and ddpm32_root is not None and ddpm32_root.is_dir():
        reals = load_cifake(cifake_root, "test", verbose=False)
        sets["DDPM-32"] = load_fakes(ddpm32_root, "DDPM-32").join(reals.subset(reals.labels == REAL), "DDPM-32")
    result = {}
    for name, data in sets.items():
        logits = cached_logits(model, data, device)
        labels = data.labels.numpy()
        low, high = bootstrap_intervals(labels, logits, metrics=("auroc",))["auroc"] or (None, None)
        result[name] = {"n_fake": int((labels == FAKE).sum()), "n_real": int((labels == REAL).sum()),
                        "auroc": float(rank_auroc(labels, logits)), "auroc, 95% low": low, "auroc, 95% high": high,
                        "ap": float(average_precision_score(labels, logits)),
                        "ap base rate": float((labels == REAL).mean())}
        print(f"transfer to {name}: AUROC {result[name]['auroc']:.4f}, AP {result[name]['ap']:.4f} (base rate "
              f"{result[name]['ap base rate']:.4f})")
    return result


# ----------------------------------------------------------------------------------------------
# CIFAKE on the backbone: a probe at each input size, then the last blocks fine-tuned, all chosen on validation

def fit_cifake(train_set, val_set, backbone="efficientnet-lite0", image_size=None, finetune=None, baseline=None,
               device="cpu", seed=0):
    """A detector on the backbone for 32 px images (CIFAKE's training split, or any set with a validation split):
    a linear probe (every tap, C = PROBE_C) at each of CIFAKE_SIZES (or `image_size`), then, at the size whose probe
    has the best validation AUROC, the last N blocks fine-tuned for each N in CIFAKE_FINETUNE["blocks"] (`finetune`
    fixes N; 0: probes only). The option with the best validation AUROC wins; its temperature and threshold are
    fitted on the same validation split. `baseline` ({"model": name, "validation AUROC": x}, from the same split)
    is what CIFAKE_SHIPPING_RULE compares with. Returns (model, history as train_model gives it, with
    history["sidecar"]: every option's validation AUROC, the choice, the rule and its verdict)."""
    if finetune is not None and not 0 <= finetune <= TUNABLE_BLOCKS:
        raise ProjectError(f"--finetune takes 0 to {TUNABLE_BLOCKS} blocks (the last ones), got {finetune}")
    seed_everything(seed)
    net, started = build_backbone(backbone), time.perf_counter()
    sizes = (image_size,) if image_size else CIFAKE_SIZES
    blocks = () if finetune == 0 else (finetune,) if finetune else CIFAKE_FINETUNE["blocks"]
    y_train, y_val = train_set.labels.numpy(), val_set.labels.numpy()
    train_all, val_all = np.arange(len(train_set)), np.arange(len(val_set))
    features = {(name, size): Features(net, data, size, device, seed) for size in sizes
                for name, data in (("train", train_set), ("val", val_set))}
    tried = {}                                         # option -> (model, validation logits)
    for size in sizes:
        pooled = features["train", size].clean(train_all)
        model = probe_model(backbone, size, tuple(TAPS), fit_probe(pooled, y_train, tuple(TAPS), PROBE_C, seed))
        tried[f"probe, {size} px"] = model, logits_from(model, pooled=features["val", size].clean(val_all))
        print(f"probe at {size} px: validation AUROC {rank_auroc(y_val, tried[f'probe, {size} px'][1]):.4f}")
    size = max(sizes, key=lambda s: rank_auroc(y_val, tried[f"probe, {s} px"][1]))
    for k in blocks:
        fronts = features["train", size].clean(train_all, k)
        model = finetune_model(backbone, size, fronts, y_train, seed, progress=True, epochs=CIFAKE_FINETUNE["epochs"],
                               blocks=k, batch_size=CIFAKE_FINETUNE["batch_size"])
        name = f"fine-tune last {k} block(s), {size} px"
        tried[name] = model, logits_from(model, fronts=features["val", size].clean(val_all, k))
        print(f"{name}: validation AUROC {rank_auroc(y_val, tried[name][1]):.4f}")
    rows = {name: float(rank_auroc(y_val, logits)) for name, (_, logits) in tried.items()}
    choice = max(rows, key=rows.get)                   # ties: the first tried, the cheaper
    model, logits = tried[choice]
    history = calibration_figures(y_val, logits)
    model.temperature = history["temperature"]
    ships = baseline is not None and rows[choice] > baseline["validation AUROC"]
    history.update(epochs=[], steps=[], amp=False, n_train=len(train_set), fakes_per_epoch={},
                   seconds=time.perf_counter() - started,
                   sidecar={"choice": choice, "choices": {name: {"validation AUROC": a} for name, a in rows.items()},
                            "shipping rule": CIFAKE_SHIPPING_RULE, "baseline": baseline, "ships": ships})
    print(f"chosen on validation: {choice}" + (f"; {'ships' if ships else 'does not ship'} by the rule (beside "
                                                 f"{baseline})" if baseline else ""))
    return model, history
