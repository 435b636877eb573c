"""photo_model: a full-size detector whose REAL class is photographs of many sources, which rarely calls a real
photograph fake and says "uncertain" where it does not know.

    python code/train.py --arch pretrained --dataset photos -mf photo_model

agiri_model learnt "real" from 800 photographs of one dataset, resized and re-saved by one third party, and calls
most real photographs from elsewhere fake. Here the REAL class is AGIRI's reals and every source of real photographs
in reals_photos_dir (ImageNet samples, BSDS500), each source weighted equally; the FAKE class is AGIRI's fakes. The
order, so that nothing is chosen on what judges it:
1. AGIRI's held-out fold is the one agiri_model holds out (same grouping, fraction and seed), set aside first; the
   faces set (CelebA-HQ reals, DDPM fakes) and CIFAR-100 never enter training: they are tests of unseen sources.
2. Every training image goes through what predict.py does to a user's image (decoded at 224 px, `DECODINGS`), then
   the "photo" augmentation (pretrained.PHOTO_CHAIN: blur, downscale, JPEG or none) in AUGMENT_COPIES copies.
3. Each option (`options()`: decoding x feature taps) is judged two ways on the training pool: grouped
   POOL_FOLDS-fold cross-validation (AGIRI's JPEG fakes against its reals, out of fold), and leaving each real source
   out in turn (`leave_source_out`): the threshold is chosen on the other sources alone (inner folds), then the left
   -out source's share called fake is measured. The option whose worst left-out source is least often called fake,
   among those with out-of-fold AUROC >= rules.PHOTO_AUROC_AT_LEAST, wins (CHOICE).
4. Its operating point (at most rules.PHOTO_VALIDATION_CALLED_FAKE of the validation reals called fake, each source
   weighted equally), its "uncertain" band and its distance limit come from the pool's out-of-fold scores.
5. The final model is trained on the whole pool; then the held-out fold and the faces set are scored once, and
   rules.PHOTO_RULE (in code before any of them was scored) says whether it gives verdicts. agiri_model is judged by
   the same rule on the same folds.
"""
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from classes import load_agiri, load_real_photos
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from realfake import FAKE, REAL
from realfake.data.duplicates import duplicate_groups
from realfake.data.file_facts import facts_of
from realfake.data.splits import HELD_OUT_FRACTION, held_out_split
from realfake.metrics import fit_temperature, probability, rank_auroc
from realfake.models.backbone import TAPS, build_backbone
from realfake.models.checkpoints import load_model
from realfake.models.inference import VERDICTS, band_verdicts
from realfake.project import ProjectError, git_commit, seed_everything
from realfake.rules import (
    PHOTO_AUROC_AT_LEAST,
    PHOTO_FAKES_CALLED_REAL,
    PHOTO_RULE,
    PHOTO_VALIDATION_CALLED_FAKE,
    photo_decision,
)
from realfake.training.pretrained import (
    AUGMENT_COPIES,
    PHOTO_CHAIN,
    Features,
    cached_logits,
    fit_probe,
    jpeg_mask,
    logits_from,
    probe_model,
    tap_columns,
    transfer_figures,
)

DECODINGS = ("full", "native")      # the whole image resized (short side 224), or its centre 224 px at native size
TAP_SETS = {"texture (stage3, stage4)": ("stage3", "stage4"), "all depths": tuple(TAPS), "content (head)": ("head",)}
C_VALUES = (0.01, 0.1)              # inverse L2 strength of the probe: stronger regularisation may carry better
POOL_FOLDS, INNER_FOLDS = 5, 3      # grouped folds of the pool; of the pool without a left-out source
OOD_COMPONENTS = 32                 # principal components of the distance to the training images
OOD_QUANTILE = 0.99                 # images farther than this quantile of validation distances: uncertain
AGIRI_REALS, AGIRI_FAKES = "AGIRI reals", "AGIRI fakes"
CHOICE = (f"the option whose worst left-out real source has the smallest share called fake, among those whose "
          f"out-of-fold AUROC (AGIRI JPEG fakes against AGIRI reals) is at least {PHOTO_AUROC_AT_LEAST}; ties: the "
          f"higher AUROC")


@dataclass(frozen=True)
class Option:
    decoding: str
    taps: str
    C: float

    @property
    def name(self):
        return f"{self.taps}, {self.decoding}, C={self.C:g}"


def options():
    return [Option(d, t, c) for d in DECODINGS for t in TAP_SETS for c in C_VALUES]


# ----------------------------------------------------------------------------------------------
# The data: every source in one set, per decoding

class Pool:
    """AGIRI's train subset and every source of real photographs, decoded one way, with each image's source, its
    file format and its duplicate group (byte- or near-identical images share one, across sources)."""

    def __init__(self, agiri_root, photos_root, decoding, backbone, image_size, device="cpu", seed=0):
        agiri = load_agiri(agiri_root, preprocess=decoding, name="AGIRI train subset, 224 px, re-saved")
        photos = load_real_photos(photos_root, decoding)
        self.agiri_count = len(agiri)
        data = agiri
        for name, part in photos.items():
            data = data.join(part, "AGIRI train subset and real photographs")
        self.data, self.photo_reports = data, {name: part.report.summary() for name, part in photos.items()}
        labels = data.labels.numpy()
        self.source = np.array([AGIRI_REALS if label == REAL else AGIRI_FAKES for label in labels[:len(agiri)]]
                               + [s.split("/", 1)[0] for s in data.sources[len(agiri):]])
        roots = [Path(agiri_root)] * len(agiri) + [Path(photos_root)] * (len(data) - len(agiri))
        self.formats = np.array([f.get("format") for f in facts_of([str(r / s) for r, s in zip(roots, data.sources)])])
        self.groups = duplicate_groups(data.images, data.digests)
        self.features = Features(backbone, data, image_size, device, seed)

    @property
    def labels(self):
        return self.data.labels.numpy()

    def real_sources(self, index):
        return sorted(map(str, set(self.source[index][self.labels[index] == REAL])))


def agiri_held_out(pool, seed=0):
    """AGIRI's held-out fold as fit_agiri makes it (same groups, fraction, seed: agiri_model's fold), and the rest of
    the pool without any image that shares a duplicate group with it."""
    agiri = np.arange(pool.agiri_count)
    agiri_groups = duplicate_groups(pool.data.images[agiri], pool.data.digests[agiri])
    _, held = held_out_split(pool.labels[agiri], agiri_groups, seed=seed)
    rest = np.setdiff1d(np.arange(len(pool.labels)), held)
    rest = rest[~np.isin(pool.groups[rest], pool.groups[held])]
    return held, rest


def counts(sources):
    return {str(s): int(n) for s, n in zip(*np.unique(sources, return_counts=True))}


def source_weights(sources, labels):
    """Sample weights: every real source the same total, the fakes as much as all reals together."""
    weights = np.zeros(len(labels))
    real_sources = sorted(set(sources[labels == REAL]))
    for source in real_sources:
        mask = (sources == source) & (labels == REAL)
        weights[mask] = 0.5 / (len(real_sources) * mask.sum())
    weights[labels == FAKE] = 0.5 / max(1, (labels == FAKE).sum())
    return weights * len(labels)


def folds_of(pool, index, n_folds, seed=0):
    """Grouped folds of `index`, stratified by source (and so by label)."""
    strata = np.unique(pool.source[index], return_inverse=True)[1]
    n_folds = min(n_folds, np.bincount(strata).min())
    if n_folds < 2:
        raise ProjectError(f"too few images of a source to cross-validate ({counts(pool.source[index])}): give each "
                           f"source at least 2 images")
    return [(index[a], index[b]) for a, b in
            StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(index, strata, pool.groups[index])]


# ----------------------------------------------------------------------------------------------
# One probe, its distance, its operating point

class Probe:
    """A probe on `taps` fitted to the augmented copies of the images at `index` (rows weighted by source), and the
    distance model of their clean features."""

    def __init__(self, pool, index, taps, C, seed=0):
        pooled, labels = pool.features.augmented(index, "photo")
        weights = np.tile(source_weights(pool.source[index], pool.labels[index]), AUGMENT_COPIES)
        self.taps = TAP_SETS[taps]
        self.model = probe_model(pool.features.backbone_name, pool.features.image_size, self.taps,
                                 fit_probe(pooled, labels, self.taps, C, seed, weights),
                                 ood_components=OOD_COMPONENTS)
        fit_distance(self.model, pool.features.clean(index))

    def scores(self, pool, index):
        """(logits, distances) of the clean images at `index`."""
        return logits_and_distances(self.model, pool.features.clean(index))


@torch.no_grad()
def logits_and_distances(model, pooled):
    """A probe model's logits and distances to its training images from cached features of every tap."""
    return logits_from(model, pooled=pooled), model.distance(pooled[:, tap_columns(model.taps)]).numpy()


def fit_distance(model, pooled):
    """Set a PretrainedDetector's distance model (ood_*) from the pooled features of its training images."""
    z = (pooled[:, tap_columns(model.taps)] - model.feature_mean) / model.feature_std
    mean = z.mean(0)
    k = min(model.ood_components, len(z) - 1, z.shape[1])
    _, s, v = torch.linalg.svd(z - mean, full_matrices=False)
    basis = torch.zeros_like(model.ood_basis)
    basis[:, :k] = v[:k].T
    scale = torch.ones_like(model.ood_scale)
    scale[:k] = (s[:k] / max(1, len(z) - 1) ** 0.5).clamp_min(1e-6)
    with torch.no_grad():
        model.ood_mean.copy_(mean)
        model.ood_basis.copy_(basis)
        model.ood_scale.copy_(scale)
        along = (z - mean) @ basis
        model.ood_residual.copy_(((z - mean) - along @ basis.T).pow(2).sum(1).mean().clamp_min(1e-6))


def weighted_share(called, sources):
    """The share of `called` with every source weighted equally."""
    return float(np.mean([called[sources == s].mean() for s in sorted(set(sources))]))


def operating_point(labels, logits, sources, distances):
    """From validation scores: the logit below which an image is called fake (at most PHOTO_VALIDATION_CALLED_FAKE of
    the reals, each source weighted equally), the logit from which it is called real (at most PHOTO_FAKES_CALLED_REAL
    of the fakes; never below the first) and the distance limit (OOD_QUANTILE of the distances)."""
    reals = labels == REAL
    candidates = np.unique(logits[reals])
    shares = np.array([weighted_share(logits[reals] < c, sources[reals]) for c in candidates])
    fake_below = float(candidates[shares <= PHOTO_VALIDATION_CALLED_FAKE].max())
    fakes = np.sort(logits[~reals])
    allowed = int(np.floor(PHOTO_FAKES_CALLED_REAL * len(fakes)))      # fakes that may score at or above real_from
    real_from = float(np.nextafter(fakes[len(fakes) - allowed - 1], np.inf)) if allowed < len(fakes) else -np.inf
    return {"fake below": fake_below, "real from": max(fake_below, real_from),
            "distance limit": float(np.quantile(distances, OOD_QUANTILE))}


def verdicts(logits, distances, point):
    """'fake', 'real' or 'uncertain' for each image at an operating point (its edges in logits: the band's order is
    the same as in P(real))."""
    return band_verdicts(logits, distances, (point["fake below"], point["real from"]), point["distance limit"])


def shares(verdict):
    return {v: float((verdict == v).mean()) if len(verdict) else float("nan") for v in VERDICTS}


def out_of_fold(pool, index, option, n_folds, seed=0):
    """Out-of-fold (logits, distances) of the images at `index`, by grouped folds."""
    logits, distances = np.zeros(len(pool.labels)), np.zeros(len(pool.labels))
    for fit, held in folds_of(pool, index, n_folds, seed):
        logits[held], distances[held] = Probe(pool, fit, option.taps, option.C, seed).scores(pool, held)
    return logits[index], distances[index]


def leave_source_out(pool, index, option, seed=0):
    """For each real source in turn: the operating point chosen on out-of-fold scores of the others alone, and the
    left-out source's verdict shares from a probe trained on all the others. {source: shares, n}."""
    result = {}
    for source in pool.real_sources(index):
        left_out = index[(pool.source[index] == source) & (pool.labels[index] == REAL)]
        rest = index[~np.isin(index, left_out)]
        logits, distances = out_of_fold(pool, rest, option, INNER_FOLDS, seed)
        point = operating_point(pool.labels[rest], logits, pool.source[rest], distances)
        probe = Probe(pool, rest, option.taps, option.C, seed)
        result[str(source)] = {"n": len(left_out), **shares(verdicts(*probe.scores(pool, left_out), point))}
    return result


# ----------------------------------------------------------------------------------------------
# photo_model, end to end

def fit_photos(agiri_root, photos_root, faces_root=None, cifake_root=None, ddpm32_root=None, old_model=None,
               backbone_name="efficientnet-lite0", image_size=224, seed=0, device="cpu", save=None):
    """Choose, train and (with `save(model, threshold, info)`) save photo_model; score the held-out fold and the
    faces set once; judge it and `old_model` (a full-size model file, agiri_model) by rules.PHOTO_RULE. Returns
    (model, info)."""
    started, commit = time.perf_counter(), git_commit()
    seed_everything(seed)
    backbone = build_backbone(backbone_name)
    pools = {d: Pool(agiri_root, photos_root, d, backbone, image_size, device, seed) for d in DECODINGS}
    pool = pools["full"]
    held, train = agiri_held_out(pool, seed)
    print(f"{len(pool.labels)} images ({', '.join(f'{s} {n}' for s, n in counts(pool.source).items())}); "
          f"AGIRI held-out fold {len(held)}, training pool {len(train)}")
    agiri_jpeg = lambda index: index[(pool.source[index] == AGIRI_REALS) | ((pool.source[index] == AGIRI_FAKES)
                                                                          & jpeg_mask(pool.labels[index],
                                                                                      pool.formats[index]))]
    rows, oof = {}, {}
    for option in tqdm(options(), desc="options", unit="option"):
        p = pools[option.decoding]
        logits, distances = out_of_fold(p, train, option, POOL_FOLDS, seed)
        oof[option] = logits, distances
        keep = np.isin(train, agiri_jpeg(train))
        rows[option.name] = {"out-of-fold AUROC, AGIRI JPEG fakes": float(rank_auroc(pool.labels[train][keep],
                                                                                      logits[keep])),
                             "left-out sources": leave_source_out(p, train, option, seed)}
        rows[option.name]["worst left-out called fake"] = max(r["fake"] for r in
                                                              rows[option.name]["left-out sources"].values())
        print(f"{option.name}: AUROC {rows[option.name]['out-of-fold AUROC, AGIRI JPEG fakes']:.4f}, left-out "
              f"called fake " + ", ".join(f"{s} {r['fake']:.1%}" for s, r in
                                          rows[option.name]["left-out sources"].items()))
    able = [o for o in options() if rows[o.name]["out-of-fold AUROC, AGIRI JPEG fakes"] >= PHOTO_AUROC_AT_LEAST]
    best = min(able or options(), key=lambda o: (rows[o.name]["worst left-out called fake"],
                                                 -rows[o.name]["out-of-fold AUROC, AGIRI JPEG fakes"]))
    pool = pools[best.decoding]
    logits, distances = oof[best]
    labels = pool.labels[train]
    point = operating_point(labels, logits, pool.source[train], distances)
    temperature = fit_temperature(labels, logits)
    validation = {str(source): shares(verdicts(logits[pool.source[train] == source],
                                          distances[pool.source[train] == source], point))
                  for source in sorted(set(pool.source[train]))}
    print(f"chosen: {best.name}; validation verdicts at the operating point: {validation}")

    final = Probe(pool, train, best.taps, best.C, seed)
    model = final.model
    model.decoding = best.decoding
    model.config["decoding"] = best.decoding
    model.temperature = temperature
    band = [float(probability(np.array([point[k]]), temperature)[0]) for k in ("fake below", "real from")]
    with torch.no_grad():
        model.band.copy_(torch.tensor(band))
        model.ood_limit.fill_(point["distance limit"])
    info = {"dataset": "AGIRI train subset, 224 px, re-saved, and real photographs", "sources": counts(pool.source),
            "photo reports": pool.photo_reports, "n_train": len(train), "n_held_out": len(held),
            "held_out": {"fraction": HELD_OUT_FRACTION, "seed": seed, "files": [pool.data.sources[i] for i in held]},
            "augment": {"copies": AUGMENT_COPIES, "photo chain": PHOTO_CHAIN},
            "options": rows, "choice rule": CHOICE, "choice": best.name, "operating point (logits)": point,
            "band (P(real))": band, "temperature": temperature, "validation verdicts": validation,
            "rule": PHOTO_RULE, "device": str(device), "torch": torch.__version__, "git_commit": commit,
            "seconds to choose": round(time.perf_counter() - started, 1)}

    # scored once, after the rule: the held-out fold, the faces set, DDPM-32
    info["held-out"] = held_out_verdicts(pool, held, model)
    faces = faces_verdicts(faces_root, model, device)
    info["faces"] = faces
    info["transfer"] = transfer_figures(model, None, cifake_root, ddpm32_root, device)
    figures = {"AGIRI held-out AUROC, JPEG fakes": info["held-out"]["AUROC, JPEG fakes"],
               "left-out sources called fake": {s: r["fake"] for s, r in rows[best.name]["left-out sources"].items()},
               "faces reals called fake": faces.get("reals", {}).get("fake"),
               "called real": {**{s: r["real"] for s, r in rows[best.name]["left-out sources"].items()},
                               **({"faces (CelebA-HQ)": faces["reals"]["real"]} if faces else {})}}
    info["decision"] = photo_decision(figures)
    if old_model is not None and Path(old_model).is_file():
        info["old model"] = judge_old_model(old_model, pools["full"], held, faces_root, device)
    info["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"held-out AUROC (JPEG fakes) {figures['AGIRI held-out AUROC, JPEG fakes']:.4f}; faces reals called fake "
          f"{figures['faces reals called fake']}; "
          f"{'gives verdicts' if info['decision']['gives verdicts'] else 'gives no verdict'} by the rule")
    if save is not None:
        save(model, band[0], info)
    return model, info


def held_out_verdicts(pool, held, model):
    """The held-out fold's AUROC (all fakes, JPEG fakes) and the verdict shares of its reals and fakes."""
    labels = pool.labels[held]
    logits, distances = logits_and_distances(model, pool.features.clean(held))
    verdict = verdict_of(model, logits, distances)
    keep = jpeg_mask(labels, pool.formats[held])
    return {"n_real": int((labels == REAL).sum()), "n_fake": int((labels == FAKE).sum()),
            "AUROC, all fakes": float(rank_auroc(labels, logits)),
            "AUROC, JPEG fakes": float(rank_auroc(labels[keep], logits[keep])),
            "reals": shares(verdict[labels == REAL]), "fakes": shares(verdict[labels == FAKE])}


def verdict_of(model, logits, distances):
    """A photo_model's verdicts from its logits and distances (its band is in P(real))."""
    return band_verdicts(probability(logits, model.temperature), distances, model.band.tolist(),
                         float(model.ood_limit))


def faces_verdicts(faces_root, model, device="cpu"):
    """The faces set (never trained on): AUROC of its DDPM fakes against its CelebA-HQ reals, and the verdict shares
    of each side; {} when it is not there."""
    if faces_root is None or not Path(faces_root).is_dir():
        return {}
    data = load_agiri(faces_root, preprocess=model.decoding, name="faces")
    features = Features(build_backbone(model.backbone.name), data, model.image_size, device)
    logits, distances = logits_and_distances(model, features.clean(np.arange(len(data))))
    verdict = verdict_of(model, logits, distances)
    labels = data.labels.numpy()
    return {"n_real": int((labels == REAL).sum()), "n_fake": int((labels == FAKE).sum()),
            "AUROC": float(rank_auroc(labels, logits)), "reals": shares(verdict[labels == REAL]),
            "fakes": shares(verdict[labels == FAKE])}


def judge_old_model(path, pool, held, faces_root, device="cpu"):
    """A full-size model without a band (agiri_model) on photo_model's folds, by the same rule: its verdict is its
    label at its own threshold (fake or real, never uncertain)."""
    model, checkpoint = load_model(path, device)
    threshold = checkpoint["threshold"]
    called_fake = lambda data: probability(cached_logits(model, data, device), model.temperature) < threshold
    labels = pool.labels
    held_data = pool.data.subset(held)
    held_logits = cached_logits(model, held_data, device)
    keep = jpeg_mask(labels[held], pool.formats[held])
    photos = {s: float(called_fake(pool.data.subset(np.flatnonzero(pool.source == s))).mean())
              for s in pool.real_sources(np.arange(len(labels))) if s != AGIRI_REALS}
    sources = {AGIRI_REALS + " (held-out fold)": float(called_fake(held_data.subset(labels[held] == REAL)).mean()),
               **photos}
    faces = {}
    if faces_root is not None and Path(faces_root).is_dir():
        data = load_agiri(faces_root, preprocess="full", name="faces", verbose=False)
        faces = {"AUROC": float(rank_auroc(data.labels.numpy(), cached_logits(model, data, device))),
                 "reals called fake": float(called_fake(data.subset(data.labels == REAL)).mean())}
    held_fakes = probability(held_logits[labels[held] == FAKE], model.temperature) < threshold
    figures = {"AGIRI held-out AUROC, JPEG fakes": float(rank_auroc(labels[held][keep], held_logits[keep])),
               "AGIRI held-out fakes called fake": float(held_fakes.mean()),
               "left-out sources called fake": sources, "faces reals called fake": faces.get("reals called fake"),
               "called real": {**{s: 1 - v for s, v in sources.items()},
                               **({"faces (CelebA-HQ)": 1 - faces["reals called fake"]} if faces else {})}}
    return {"model": Path(path).stem, "threshold": threshold, "faces AUROC": faces.get("AUROC"), **figures,
            "decision": photo_decision(figures)}
