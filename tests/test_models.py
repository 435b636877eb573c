"""Networks, training, checkpoints and the evaluation metrics."""
import json

import numpy as np
import pytest
import torch

from classes import CIFAKE_CNN, SRMLayer, build_model, count_parameters, load_cifake, load_model, save_model
from evaluate import (accuracy_by_group, bootstrap_intervals, choose_threshold, leaked_test_images,
                      score_at_threshold, share_called_real, threshold_sweep)
from project import ProjectError
from train import split_train_val, train_model


def test_srm_layer_shapes_gates_and_gradients():
    layer = SRMLayer(6)
    x = torch.randn(8, 6, 14, 14, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape and layer.gate.shape == (8, 6)
    assert ((layer.gate > 0) & (layer.gate < 1)).all()
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    assert x.grad.abs().sum() > 0


def test_cnn_shapes_and_parameter_counts():
    x = torch.randn(5, 3, 32, 32)
    assert CIFAKE_CNN()(x).shape == (5,)
    assert count_parameters(CIFAKE_CNN()) == 61_241                  # the original study's count
    attn = CIFAKE_CNN(attn=True)
    assert attn(x).shape == (5,) and count_parameters(attn) == 61_241 + 24
    assert attn.srm.gate.shape == (5, 6)


def test_training_on_sample_data_learns(sample_model):
    _, history = sample_model
    epochs = history["epochs"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.1
    assert epochs[-1]["val_accuracy"] > 0.8 and history["val_at_threshold"]["auroc"] > 0.9


def test_training_is_deterministic_for_a_seed(sample_root):
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    train = train.subset(range(0, len(train), 4))
    runs = [train_model(train, val, epochs=1, attn=True, seed=7, progress=False)[0] for _ in range(2)]
    for (name, a), b in zip(runs[0].state_dict().items(), runs[1].state_dict().values()):
        assert torch.equal(a, b), name
    other = train_model(train, val, epochs=1, attn=True, seed=8, progress=False)[0]
    assert not torch.equal(other.conv1.weight, runs[0].conv1.weight)


def test_learning_curve_logging(sample_root):
    train, val = split_train_val(load_cifake(sample_root / "CIFAKE", "train", verbose=False))
    _, history = train_model(train, val, epochs=1, log_every=10, progress=False)
    steps = history["steps"]
    assert [s["step"] for s in steps] == list(range(10, len(train) // 32 + 1, 10))
    assert steps[0]["images_seen"] == 320 and {"loss", "accuracy", "val_accuracy", "val_loss"} <= steps[0].keys()


def test_validation_split_is_stratified_and_disjoint(sample_root):
    data = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    train, val = split_train_val(data, 0.1, seed=0)
    assert len(val) == 200 and len(train) == 1800 and not set(train.sources) & set(val.sources)
    assert (val.labels == 1).sum() == 100 and val.classes.bincount().tolist() == [20] * 10
    assert split_train_val(data, 0.1, seed=0)[1].sources == val.sources


def test_checkpoint_round_trip(tmp_path):
    model = CIFAKE_CNN(attn=True).eval()
    path = tmp_path / "m.pth"
    save_model(model, path, threshold=0.42, info={"epochs": 3})
    loaded, meta = load_model(path)
    assert isinstance(loaded.srm, SRMLayer) and meta["threshold"] == 0.42 and meta["arch_kwargs"] == {"attn": True}
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["attn"] is True and sidecar["epochs"] == 3 and sidecar["threshold"] == 0.42
    assert not list(tmp_path.glob("*.tmp"))


def test_damaged_and_foreign_checkpoints_are_refused(tmp_path):
    path = tmp_path / "m.pth"
    save_model(CIFAKE_CNN(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ProjectError, match="damaged"):
        load_model(path)
    torch.save({"weights": 1}, path)
    with pytest.raises(ProjectError, match="not a checkpoint of this project"):
        load_model(path)
    save_model(CIFAKE_CNN(attn=True), path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["arch_kwargs"] = {"attn": False}                    # weights of the attention model
    torch.save(checkpoint, path)
    with pytest.raises(ProjectError, match="do not fit"):
        load_model(path)
    with pytest.raises(ProjectError, match="not found"):
        load_model(tmp_path / "absent.pth")
    with pytest.raises(ProjectError, match="unknown architecture"):
        build_model("transformer")


def test_checkpoint_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))
    path = tmp_path / "evil.pth"
    torch.save({"format": "x", "payload": Evil()}, path)
    with pytest.raises(ProjectError, match="damaged or not a PyTorch checkpoint"):
        load_model(path)


def test_metrics_against_hand_computed_values():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.2])
    r = score_at_threshold(labels, scores, 0.5)
    # called real: 0.6, 0.8, 0.9, 0.7 -> TP 3 (0.8, 0.9, 0.7), FP 1 (0.6), FN 2 (0.4, 0.2), TN 2
    assert r["accuracy"] == 5 / 8 and r["confusion"] == [[2, 1], [2, 3]]
    assert r["per_class"]["Real"]["precision"] == 3 / 4 and r["per_class"]["Real"]["recall"] == 3 / 5
    assert r["per_class"]["Fake"]["precision"] == 2 / 4 and r["per_class"]["Fake"]["recall"] == 2 / 3
    assert r["per_class"]["Real"]["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    # AUROC: of the 15 (real, fake) pairs the real one scores higher in 3 + 2 + 3 + 3 + 1 = 12
    assert r["auroc"] == pytest.approx(12 / 15)
    sweep = threshold_sweep(labels, scores)
    assert list(sweep["threshold"]) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert sweep.loc[sweep.threshold == 0.5, "accuracy"].item() == 5 / 8
    assert sweep.loc[sweep.threshold == 0.1, "recall"].item() == 1.0


def test_threshold_choice_maximises_balanced_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.9])
    threshold = choose_threshold(labels, scores)
    assert 0.2 < threshold <= 0.25 and score_at_threshold(labels, scores, threshold)["accuracy"] == 1.0


def test_bootstrap_intervals_bracket_the_figures_and_narrow_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (400, 6400):
        labels = rng.integers(0, 2, n)
        scores = np.clip(0.5 + (labels - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)     # about 79% accurate
        intervals = bootstrap_intervals(labels, scores, 0.5)
        point = score_at_threshold(labels, scores, 0.5)
        for metric in ("accuracy", "auroc"):
            low, high = intervals[metric]
            assert low < point[metric] < high
        widths.append(intervals["accuracy"][1] - intervals["accuracy"][0])
        assert intervals == bootstrap_intervals(labels, scores, 0.5)                    # seeded
    binomial = 2 * 1.96 * np.sqrt(0.79 * 0.21 / 6400)                                   # normal approximation
    assert widths[0] == pytest.approx(4 * widths[1], rel=0.25) and widths[1] == pytest.approx(binomial, rel=0.15)
    perfect = bootstrap_intervals(np.array([0, 0, 1, 1] * 10), np.array([0.1, 0.2, 0.8, 0.9] * 10))
    assert perfect == {"accuracy": (1.0, 1.0), "auroc": (1.0, 1.0)}


def test_one_class_sets_have_no_auroc_and_group_shares():
    scores = np.array([0.9, 0.2, 0.7, 0.6, 0.1])
    r = score_at_threshold(np.ones(5, int), scores, 0.5)
    assert r["auroc"] is None and r["called_real"] == 3 / 5
    table = share_called_real(scores, [0, 0, 1, 1, 1], ["cats", "dogs"])
    assert table.loc["cats", "share_real"] == 0.5 and table.loc["dogs", "share_real"] == pytest.approx(2 / 3)
    assert table.loc["dogs", "n"] == 3 and table.loc["cats", "mean_p_real"] == pytest.approx(0.55)
    by = accuracy_by_group(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.3, 0.6]), [0, 0, 1, 1], ["a", "b"])
    assert by.loc["a", "accuracy"] == 1.0 and by.loc["b", "accuracy"] == 0.0


def test_leak_detection_by_file_content(sample_root):
    test = load_cifake(sample_root / "CIFAKE", "test", verbose=False)
    train = load_cifake(sample_root / "CIFAKE", "train", verbose=False)
    assert leaked_test_images(test, train).sum() == 0
    assert leaked_test_images(test, test).all()


class MeanPixel(torch.nn.Module):
    """A stand-in model whose logit is the mean normalised pixel value."""
    def forward(self, x):
        return x.mean((1, 2, 3))


def test_multi_crop_scores_are_the_mean_over_each_images_crops():
    from evaluate import predict_scores
    levels = torch.tensor([0, 255, 255, 0, 0, 0], dtype=torch.uint8)       # 2 images x 3 crops
    images = levels[:, None, None, None].expand(6, 3, 32, 32).contiguous()
    scores = predict_scores(MeanPixel(), images, crops_per_image=3)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))                                 # pixel 0 -> -1, 255 -> +1
    assert scores == pytest.approx([(sigmoid(-1) + 2 * sigmoid(1)) / 3, sigmoid(-1)])


def test_cifar100_transfer_tables_against_hand_computed_values():
    from types import SimpleNamespace
    from evaluate import cifar100_transfer
    data = SimpleNamespace(classes=np.array([0, 0, 1, 1]), class_names=["apple", "bee"],
                           coarse=np.array([0, 0, 0, 1]), coarse_names=["plants", "insects"])
    scores = {"a": np.array([0.9, 0.1, 0.6, 0.8]), "b": np.array([0.2, 0.3, 0.9, 0.1])}
    t = cifar100_transfer(scores, data, threshold=0.5)
    assert t["overall"].to_dict() == {"a": 0.75, "b": 0.25}
    assert t["coarse"].loc["plants"].tolist() == pytest.approx([2 / 3, 1 / 3]) and t["coarse"].loc["insects"].tolist() == [1, 0]
    assert t["fine"].loc["apple"].tolist() == [0.5, 0.0] and t["fine"].loc["bee"].tolist() == [1.0, 0.5]
    assert list(t["coarse"].index) == ["plants", "insects"]                 # worst first, by the first model
