"""Fakes made from real images, one of the transfer study's ideas: uint8 real images N x 3 x 32 x 32 turned into
"fakes" of the same content, saved as CIFAKE saves (JPEG, PIL's quality-75 tables), so that only the made traces
differ. Recipes name them as train_fakes sources (pools.fake_source):
    resample     a resampling chain: down to 16-24 px and back up, with a random pair of interpolations
    autoencoder  reconstructions by a small autoencoder trained on the real images, decoder upsampling by nearest
                 neighbour then convolution (as Stable Diffusion's VAE and DDPM's U-Net decode)
    autoencoder_tconv  the same with transposed convolutions (as DCGAN-style generators decode)"""
import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from realfake.data.perturb import jpeg, rescale
from realfake.models.generators import Autoencoder
from realfake.project import REPO_ROOT, fast_bfloat16, seed_everything

# ----------------------------------------------------------------------------------------------
# Fake-makers

FAKES_DIR = REPO_ROOT / "data" / ".made_fakes"       # made fakes, kept like the decode cache (ignored by git)


RESAMPLE_SIZES = (16, 20, 24)
RESAMPLE_DOWN = ("nearest", "area", "bilinear", "bicubic")
RESAMPLE_UP = ("nearest", "bilinear", "bicubic")


def as_cifake_jpeg(images):
    """Save and decode as CIFAKE's files were saved (PIL JPEG, quality 75): the container must not tell made fakes."""
    return jpeg(images, 75)


def resample_fakes(images, seed=0, **_):
    """Each image down to a random size of RESAMPLE_SIZES and back, with a random pair of interpolations."""
    rng = np.random.default_rng(seed)
    choice = np.stack([rng.integers(0, len(options), len(images))
                       for options in (RESAMPLE_SIZES, RESAMPLE_DOWN, RESAMPLE_UP)], 1)
    out = torch.empty_like(images)
    for size, down, up in np.unique(choice, axis=0):
        rows = torch.from_numpy(np.flatnonzero((choice == (size, down, up)).all(1)))
        out[rows] = rescale(images[rows], RESAMPLE_SIZES[size], RESAMPLE_DOWN[down], RESAMPLE_UP[up])
    return as_cifake_jpeg(out)


AUTOENCODER = dict(epochs=3, batch_size=256, lr=2e-3)     # AdamW, one-cycle, L1 loss; bfloat16 where fast


def train_autoencoder(images, decoder="nearest", seed=0, device="cpu", progress=True):
    """An Autoencoder trained to rebuild uint8 `images` (AUTOENCODER), in eval mode."""
    seed_everything(seed)
    epochs, batch_size, lr = AUTOENCODER["epochs"], AUTOENCODER["batch_size"], AUTOENCODER["lr"]
    device = torch.device(device)
    model = Autoencoder(decoder).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=epochs * -(-len(images) // batch_size))
    generator, bf16 = torch.Generator().manual_seed(seed), fast_bfloat16(device)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in tqdm(range(0, len(images), batch_size), leave=False, disable=not progress,
                          desc=f"autoencoder {epoch + 1}/{epochs}"):
            x = images[order[start:start + batch_size]].to(device).float().div_(127.5).sub_(1)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                loss = (model(x).float() - x).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.inference_mode()
def reconstruct(model, images, device="cpu", batch_size=2048):
    """The model's uint8 rebuild of uint8 `images`."""
    rebuilt = [model(images[start:start + batch_size].to(device).float().div_(127.5).sub_(1)).add(1).mul(127.5)
               for start in range(0, len(images), batch_size)]
    return torch.cat(rebuilt).round().clamp(0, 255).to(torch.uint8).cpu()


def autoencoder_fakes(images, seed=0, decoder="nearest", device="cpu", progress=True):
    """Reconstructions of `images` by an Autoencoder trained on them, saved as CIFAKE saves."""
    return as_cifake_jpeg(reconstruct(train_autoencoder(images, decoder, seed, device, progress), images, device))


FAKE_MAKERS = {"resample": resample_fakes, "autoencoder": autoencoder_fakes,
               "autoencoder_tconv": lambda images, **kw: autoencoder_fakes(images, decoder="transposed", **kw)}


def make_fakes(maker, images, seed=0, device="cpu", folder=FAKES_DIR, progress=True):
    """FAKE_MAKERS[maker] applied to uint8 real images, kept on disk under the maker, its settings, the seed and the
    images' contents: a second run with the same real images reads them back."""
    settings = (RESAMPLE_SIZES, RESAMPLE_DOWN, RESAMPLE_UP) if maker == "resample" else AUTOENCODER
    key = hashlib.sha1(images.numpy().tobytes() + repr(settings).encode()).hexdigest()[:16]
    path = Path(folder) / f"{maker}-seed{seed}-{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    made = FAKE_MAKERS[maker](images, seed=seed, device=device, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, made.numpy())
    return made
