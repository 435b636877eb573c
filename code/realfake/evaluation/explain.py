"""Explanations: Grad-CAM-family heat maps (through the maintained `grad-cam` library) and the SRM
attention gates of the attention model."""
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

from classes import CIFAKE_CNN
from realfake import FAKE, REAL
from realfake.data.inputs import normalise
from realfake.models.networks import single_view

CAM_METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}


def last_conv_layer(model):
    """The layer whose activations the maps explain: the CNN's last convolution."""
    if isinstance(model, CIFAKE_CNN):
        return model.conv2
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def cam_maps(model, images, method="gradcam", target=REAL, device="cpu", batch_size=256):
    """Heat maps (N x H x W, in [0, 1], the images' size) of the evidence for `target` (REAL: towards
    'real', FAKE: towards 'fake'; one label, or one per image) at the last conv layer, for uint8 images."""
    model = model.to(device).eval()
    targets = [BinaryClassifierOutputTarget(int(t)) for t in np.broadcast_to(np.asarray(target), len(images))]
    maps = []
    with single_view(model), CAM_METHODS[method](model=model, target_layers=[last_conv_layer(model)]) as cam:
        for start in range(0, len(images), batch_size):
            batch = normalise(images[start:start + batch_size].to(device))
            maps.append(cam(input_tensor=batch, targets=targets[start:start + batch_size]))
    return np.concatenate(maps) if maps else np.zeros((0, *images.shape[-2:]), np.float32)


def centre_share(maps):
    """The share of each heat map's mass in the central quarter of the image (the middle half of each
    side), where CIFAR-style images put their object; 0.25 for a uniform map."""
    h, w = maps.shape[-2:]
    centre = maps[:, h // 4: h - h // 4, w // 4: w - w // 4].sum((1, 2))
    return centre / np.maximum(maps.sum((1, 2)), 1e-12)


def overlay(image, heat):
    """A uint8 image (3 x H x W) with its heat map (H x W in [0, 1]) blended on top, as H x W x 3 uint8."""
    return show_cam_on_image(image.permute(1, 2, 0).numpy() / 255.0, heat, use_rgb=True, image_weight=0.6)


def pick_examples(labels, scores, threshold=0.5, per_group=3):
    """Indices of the most confident correct and wrong predictions for each true label:
    {("Real", "correct"): [...], ("Real", "wrong"): [...], ("Fake", ...)}; a group with no image is left out."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    called_real = scores >= threshold
    picks = {}
    for label, name in ((REAL, "Real"), (FAKE, "Fake")):
        confidence = scores if label == REAL else 1 - scores          # confidence in the true label
        for outcome, mask in (("correct", called_real == (label == REAL)), ("wrong", called_real != (label == REAL))):
            idx = np.flatnonzero((labels == label) & mask)
            if not len(idx):
                continue
            order = np.argsort(-confidence[idx]) if outcome == "correct" else np.argsort(confidence[idx])
            picks[name, outcome] = idx[order[:per_group]].tolist()
    return picks


@torch.inference_mode()
def srm_gates(model, images, device="cpu", batch_size=4096):
    """The attention model's SRM gate values (N x channels, in (0, 1)) for uint8 images."""
    model = model.to(device).eval()
    gates = []
    for start in range(0, len(images), batch_size):
        model(normalise(images[start:start + batch_size].to(device)))
        gates.append(model.srm.gate.cpu())
    return torch.cat(gates).numpy()


def gate_statistics(gates, labels):
    """Per channel: the mean gate on REAL and on FAKE images and their difference (fake minus real),
    sorted by how much more the model lets the channel through for fakes."""
    labels = np.asarray(labels)
    table = pd.DataFrame({"gate on Real": gates[labels == REAL].mean(0), "gate on Fake": gates[labels == FAKE].mean(0)},
                         index=pd.Index([f"channel {c}" for c in range(gates.shape[1])], name="SRM channel"))
    table["fake minus real"] = table["gate on Fake"] - table["gate on Real"]
    return table.sort_values("fake minus real", ascending=False)


def save_overlays(model, images, table, folder, device="cpu"):
    """One PNG per scored image (rows of a `score_files` table): the image beside its Grad-CAM overlay, the
    evidence for the predicted label. With several crops per image, the first crop is explained."""
    import matplotlib.pyplot as plt
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    first_crops = images[::len(images) // max(1, len(table))]
    for i, row in enumerate(table.itertuples()):
        heat = cam_maps(model, first_crops[i:i + 1], target=int(row.label == "Real"), device=device)[0]
        fig, (left, right) = plt.subplots(1, 2, figsize=(4, 2.2))
        left.imshow(first_crops[i].permute(1, 2, 0).numpy())
        right.imshow(overlay(first_crops[i], heat))
        for ax in (left, right):
            ax.axis("off")
        fig.suptitle(f"P(real) {row.p_real:.2f}: {row.label}", fontsize=9)
        fig.savefig(folder / f"{i:05d}_{Path(row.path).stem}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
