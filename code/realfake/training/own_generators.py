"""Generators the project trains itself, on CIFAKE's real training images, on a CPU: fakes of three families that
need nothing from outside.

    gan   DCGAN-style (Radford et al. 2016): transposed convolutions up from a 64-d noise vector, a strided
          convolutional critic, the non-saturating loss
    vae   a convolutional VAE (Kingma & Welling 2014): a 64-d latent, nearest-neighbour upsampling then convolution
          in the decoder (as Stable Diffusion's VAE decodes); samples are the decoder's mean for z ~ N(0, I)
    flow  a RealNVP-style flow (Dinh et al. 2017): affine couplings with checkerboard and channel masks around one
          squeeze, trained by exact likelihood; samples drawn at temperature FLOW_TEMPERATURE

Each trains for a fixed number of steps (OWN_GENERATORS: the three in about 18 minutes on 2 CPU cores, `bench.py
nofake`) and draws SAMPLES images, saved as CIFAKE saves (PIL JPEG, quality 75) in data/own_generators/NAME-KEY/fake/
with the weights (model.pt) and the run's facts (settings.json) beside; KEY is a hash of the settings and of the
training images, so a second run with the same ones reads the folder back. Recipes name them as train_fakes sources
`own:NAME` (pools.fake_source).

Its command: `python code/owngen.py` (--help lists the flags).
"""
import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
from PIL import Image
from tqdm.auto import tqdm

from realfake.models.generators import FLOW_TEMPERATURE, MODELS, to_uint8
from realfake.project import REPO_ROOT, ProjectError, seed_everything

OWN_DIR = REPO_ROOT / "data" / "own_generators"
SAMPLES = 5000                       # images drawn from each generator (the development generators hold 129-5,000)
MAX_PASSES = 4                       # at most this many passes over the training images (binds on small data only)


# name: steps of Adam at this batch size and learning rate (betas 0.5, 0.999 for the GAN, as DCGAN trains)
OWN_GENERATORS = {"gan": dict(steps=2400, batch_size=64, lr=2e-4, width=32),
                  "vae": dict(steps=2400, batch_size=64, lr=1e-3, width=32),
                  "flow": dict(steps=1500, batch_size=64, lr=1e-3, width=48)}


def settings_for(name, n_images):
    """OWN_GENERATORS[name], its steps capped at MAX_PASSES passes over n_images."""
    settings = OWN_GENERATORS[name]
    return {**settings, "steps": min(settings["steps"], -(-MAX_PASSES * n_images // settings["batch_size"]))}


def train_generator(name, images, seed=0, settings=None, progress=True):
    """Own generator `name` trained on uint8 `images` N x 3 x 32 x 32 (settings_for, unless `settings`), in eval
    mode."""
    settings = settings or settings_for(name, len(images))
    seed_everything(seed)
    generator = torch.Generator().manual_seed(seed)
    model = MODELS[name](settings["width"])
    if name == "gan":
        optimizers = [torch.optim.Adam(part.parameters(), settings["lr"], betas=(0.5, 0.999))
                      for part in (model.critic, model.generator)]
    else:
        optimizer = torch.optim.Adam(model.parameters(), settings["lr"])
    bar = tqdm(range(settings["steps"]), desc=f"own {name}", leave=False, disable=not progress, mininterval=10)
    for step in bar:
        batch = images[torch.randint(len(images), (settings["batch_size"],), generator=generator)]
        if name == "gan":
            loss = model.train_step(batch, optimizers, generator)
        else:
            loss = model.loss(batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 100.0)      # a rare large step would unsettle the flow
            optimizer.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.inference_mode()
def draw(model, n, seed=0, batch_size=500):
    """n uint8 samples N x 3 x 32 x 32 from a trained generator, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([to_uint8(model.sample(min(batch_size, n - start), generator))
                      for start in range(0, n, batch_size)])


def own_folder(name, images, seed=0, settings=None, samples=SAMPLES, root=OWN_DIR):
    """Where own generator `name`'s samples for these training images and settings are kept (no more samples than
    training images)."""
    settings, samples = settings or settings_for(name, len(images)), min(samples, len(images))
    key = hashlib.sha1(images.numpy().tobytes() + repr((settings, seed, samples, FLOW_TEMPERATURE)).encode())
    return Path(root) / f"{name}-{key.hexdigest()[:12]}"


def own_generator(name, images, seed=0, settings=None, samples=SAMPLES, root=OWN_DIR, progress=True):
    """The folder (holding fake/ and settings.json) of `samples` images (no more than there are training images)
    from own generator `name` trained on uint8 real `images`: made and saved as CIFAKE saves on the first call,
    found on later ones."""
    if name not in MODELS:
        raise ProjectError(f"unknown own generator '{name}' (choose from {', '.join(MODELS)})")
    settings, samples = settings or settings_for(name, len(images)), min(samples, len(images))
    folder = own_folder(name, images, seed, settings, samples, root)
    if (folder / "settings.json").is_file():
        return folder
    started = time.perf_counter()
    model = train_generator(name, images, seed, settings, progress)
    trained = time.perf_counter() - started
    made = draw(model, samples, seed).permute(0, 2, 3, 1).numpy()
    partial = folder.with_name(folder.name + ".partial")
    (partial / "fake").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(made):
        Image.fromarray(image).save(partial / "fake" / f"{i:05d}.jpg", "JPEG", quality=75)
    facts = {"generator": name, "settings": settings, "seed": seed, "samples": samples,
             "training images": len(images), "parameters": sum(p.numel() for p in model.parameters()),
             "training seconds": round(trained, 1), "seconds with sampling": round(time.perf_counter() - started, 1)}
    torch.save(model.state_dict(), partial / "model.pt")          # zeroshot.py scores images with the flow
    (partial / "settings.json").write_text(json.dumps(facts, indent=2) + "\n")
    partial.rename(folder)                  # whole or absent: an interrupted run leaves only a .partial folder
    return folder


def made_folders(images, root=OWN_DIR):
    """{name: folder} of the own generators already made from these training images with the default settings."""
    folders = {name: own_folder(name, images, root=root) for name in MODELS}
    return {name: folder for name, folder in folders.items() if (folder / "settings.json").is_file()}


def not_made(made, sample=False):
    """One line for each own generator missing from `made` (made_folders): its name and the command that makes it."""
    return [f"own {name} (not made yet: python code/owngen.py --only {name}{' --sample' if sample else ''})"
            for name in MODELS if name not in made]
