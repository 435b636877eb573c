"""Checkpoints: a model's state dict with what rebuilds it (architecture, keywords, threshold, calibration
temperature), and a JSON sidecar with how it was made. Loading uses weights_only=True, so a file from elsewhere
cannot run code."""
import io
import json
from pathlib import Path

import torch

from realfake.models.networks import build_model
from realfake.project import ProjectError, atomic_write_files, shown

CHECKPOINT_FORMAT = "cifake-detector/1"


def read_sidecar(path):
    """The JSON sidecar of a model file ({} if it has none)."""
    path = Path(path).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else {}


def save_model(model, path, threshold=0.5, info=None):
    """Write `path` (.pth, str or Path) and its JSON sidecar. Both are serialised and written to temporary files
    before either is renamed into place, so a failure leaves neither half-written and never one without the other.
    The checkpoint keeps the model's calibration temperature (`model.temperature`, 1 if unset) beside the weights."""
    path = Path(path)
    config = dict(model.config)
    checkpoint = {"format": CHECKPOINT_FORMAT, "arch": config.pop("arch"), "arch_kwargs": config,
                  "normalisation": "x / 127.5 - 1", "threshold": float(threshold),
                  "temperature": float(getattr(model, "temperature", 1.0)),
                  "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    sidecar = {"file": path.name, **model.config, "threshold": float(threshold), **(info or {})}
    atomic_write_files({path: buffer.getvalue(), path.with_suffix(".json"): (json.dumps(sidecar, indent=2) + "\n").encode()})


def load_model(path, device="cpu"):
    """Rebuild a model from a checkpoint written by save_model. Returns (model in eval mode, checkpoint
    without its weights). Loads with weights_only=True, so a file from elsewhere cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise ProjectError(f"model file {shown(path)} not found: train one with `python code/train.py -mf {path.stem}` "
                           f"or restore models/ from git")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ProjectError(f"{shown(path)} is damaged or not a PyTorch checkpoint ({type(e).__name__}); "
                           f"retrain it or restore it from git") from None
    needed = {"format", "arch", "arch_kwargs", "state_dict"}
    if not isinstance(checkpoint, dict) or not needed <= checkpoint.keys() or \
            checkpoint["format"] != CHECKPOINT_FORMAT:
        raise ProjectError(f"{shown(path)} is not a checkpoint of this project (expected format {CHECKPOINT_FORMAT} "
                           f"with keys {sorted(needed)}); save models with code/train.py")
    model = build_model(checkpoint["arch"], **checkpoint["arch_kwargs"])
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ProjectError(f"{shown(path)}: the weights do not fit architecture {checkpoint['arch']} "
                           f"{checkpoint['arch_kwargs']} ({first})") from None
    model.temperature = float(checkpoint.get("temperature", 1.0))   # P(real) = sigmoid(logit / temperature)
    meta = {k: v for k, v in checkpoint.items() if k != "state_dict"}
    return model.to(device).eval(), meta
