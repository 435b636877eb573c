"""Generators the project trains itself, on CIFAKE's real training images, on a CPU: fakes of three families that
need nothing from outside.

    python code/owngen.py                 # train all three (or fetch them from data/own_generators/), time them
    python code/owngen.py --only gan      # one of them
    python code/owngen.py --sample        # on the generated sample data, for a smoke test

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
"""
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

import cli
from project import REPO_ROOT, ProjectError, seed_everything
from splits import benchmark_reals

OWN_DIR = REPO_ROOT / "data" / "own_generators"
SAMPLES = 5000                       # images drawn from each generator (the development generators hold 129-5,000)
LATENT = 64
MAX_PASSES = 4                       # at most this many passes over the training images (binds on small data only)
FLOW_TEMPERATURE = 0.7               # the usual way to draw cleaner samples from a flow (Kingma & Dhariwal 2018)
# name: steps of Adam at this batch size and learning rate (betas 0.5, 0.999 for the GAN, as DCGAN trains)
OWN_GENERATORS = {"gan": dict(steps=2400, batch_size=64, lr=2e-4, width=32),
                  "vae": dict(steps=2400, batch_size=64, lr=1e-3, width=32),
                  "flow": dict(steps=1500, batch_size=64, lr=1e-3, width=48)}


def to_unit(images):
    return images.float().div(127.5).sub(1)


def to_uint8(x):
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------
# The three generators. The VAE and the flow train on loss(uint8 batch, generator), the GAN by train_step; each
# draws sample(n, generator) in [-1, 1].

class GAN(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        w = width
        up = lambda c_in, c_out: [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                  nn.ReLU(True)]
        down = lambda c_in, c_out: [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                    nn.LeakyReLU(0.2, True)]
        self.generator = nn.Sequential(nn.ConvTranspose2d(LATENT, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w),
                                       nn.ReLU(True), *up(8 * w, 4 * w), *up(4 * w, 2 * w),
                                       nn.ConvTranspose2d(2 * w, 3, 4, 2, 1), nn.Tanh())
        self.critic = nn.Sequential(nn.Conv2d(3, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, True), *down(2 * w, 4 * w),
                                    *down(4 * w, 8 * w), nn.Conv2d(8 * w, 1, 4, 1, 0))

    def generate(self, z):
        return self.generator(z[:, :, None, None])

    def sample(self, n, generator):
        return self.generate(torch.randn(n, LATENT, generator=generator))

    def train_step(self, images_uint8, optimizers, generator):
        """One critic step and one generator step of the non-saturating GAN loss."""
        critic_optimizer, generator_optimizer = optimizers
        fake = self.sample(len(images_uint8), generator)
        critic_loss = (F.softplus(-self.critic(to_unit(images_uint8))).mean()
                       + F.softplus(self.critic(fake.detach())).mean())
        critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_optimizer.step()
        generator_loss = F.softplus(-self.critic(fake)).mean()
        generator_optimizer.zero_grad(set_to_none=True)
        generator_loss.backward()
        generator_optimizer.step()
        return generator_loss


class VAE(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        w = width
        up = lambda c_in, c_out: [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.ReLU(True)]
        self.encoder = nn.Sequential(nn.Conv2d(3, w, 4, 2, 1), nn.ReLU(True), nn.Conv2d(w, 2 * w, 4, 2, 1),
                                     nn.ReLU(True), nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.ReLU(True), nn.Flatten(),
                                     nn.Linear(4 * w * 16, 2 * LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, 4 * w * 16), nn.Unflatten(1, (4 * w, 4, 4)),
                                     *up(4 * w, 2 * w), *up(2 * w, w), *up(w, w), nn.Conv2d(w, 3, 3, padding=1),
                                     nn.Tanh())

    def loss(self, images_uint8, generator):
        """The negative evidence lower bound per dimension: squared error at a fixed spread, plus the KL term."""
        x = to_unit(images_uint8)
        mean, log_var = self.encoder(x).chunk(2, 1)
        z = mean + (0.5 * log_var).exp() * torch.randn(mean.shape, generator=generator)
        rebuilt = self.decoder(z)
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(1)
        return (((rebuilt - x) ** 2).sum((1, 2, 3)) / (2 * 0.1 ** 2) + kl).mean() / x[0].numel()

    def sample(self, n, generator):
        return self.decoder(torch.randn(n, LATENT, generator=generator))


class Coupling(nn.Module):
    """An affine coupling: one part of x passes unchanged and sets a scale and shift of the rest. mask "checker"
    keeps the pixels of one parity of a checkerboard; mask "channel" keeps the first (parity 0) or last half of the
    channels."""

    def __init__(self, channels, mask, parity, width):
        super().__init__()
        self.mask, self.parity = mask, parity
        c_in = channels if mask == "checker" else channels // 2
        self.net = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 1),
                                 nn.ReLU(), nn.Conv2d(width, 2 * c_in, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)                 # each coupling starts as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x, reverse=False):
        """(y, log-determinant per image); reverse=True inverts."""
        if self.mask == "checker":
            h, w = x.shape[-2:]
            free = ((torch.arange(h)[:, None] + torch.arange(w)[None, :] + self.parity) % 2).to(x)
            kept, rest = x * (1 - free), x
        else:
            kept, rest = x.chunk(2, 1)[::1 if self.parity == 0 else -1]
            free = 1
        log_scale, shift = self.net(kept).chunk(2, 1)
        log_scale, shift = self.scale * torch.tanh(log_scale) * free, shift * free    # zero where kept
        changed = (rest - shift) * torch.exp(-log_scale) if reverse else rest * torch.exp(log_scale) + shift
        if self.mask == "channel":
            changed = torch.cat([kept, changed] if self.parity == 0 else [changed, kept], 1)
        return changed, log_scale.sum((1, 2, 3))


class Flow(nn.Module):
    """Logit space of dequantised images -> N(0, I): three checkerboard couplings at 3 x 32 x 32, a squeeze to
    12 x 16 x 16, three channel couplings and four checkerboard ones."""

    ALPHA = 0.05                    # the logit transform's margin (RealNVP)

    def __init__(self, width=48):
        super().__init__()
        self.before = nn.ModuleList(Coupling(3, "checker", p % 2, width) for p in range(3))
        self.after = nn.ModuleList([Coupling(12, "channel", p % 2, width) for p in range(3)]
                                   + [Coupling(12, "checker", p % 2, width) for p in range(4)])

    def log_likelihood(self, images_uint8, noise=0.5):
        """The log-density per dimension (nats) of each uint8 image dequantised by `noise` in [0, 1) (a tensor of the
        images' shape, or one number: 0.5 is each level's centre), as a density on [0, 1]^D."""
        x = (images_uint8.float() + noise) / 256
        y = self.ALPHA + (1 - 2 * self.ALPHA) * x
        z = torch.logit(y)
        total = (np.log(1 - 2 * self.ALPHA) - torch.log(y) - torch.log1p(-y)).sum((1, 2, 3))   # the logit transform's
        for layer in self.before:
            z, log_det = layer(z)
            total = total + log_det
        z = F.pixel_unshuffle(z, 2)
        for layer in self.after:
            z, log_det = layer(z)
            total = total + log_det
        return (-0.5 * (z ** 2 + np.log(2 * np.pi)).sum((1, 2, 3)) + total) / z[0].numel()

    def loss(self, images_uint8, generator):
        """Bits per dimension of the uniformly dequantised images, on the scale of 256 levels."""
        noise = torch.rand(images_uint8.shape, generator=generator)
        return -self.log_likelihood(images_uint8, noise).mean() / np.log(2) + 8

    def sample(self, n, generator):
        z = FLOW_TEMPERATURE * torch.randn(n, 12, 16, 16, generator=generator)
        for layer in reversed(self.after):
            z, _ = layer(z, reverse=True)
        z = F.pixel_shuffle(z, 2)
        for layer in reversed(self.before):
            z, _ = layer(z, reverse=True)
        x = (torch.sigmoid(z) - self.ALPHA) / (1 - 2 * self.ALPHA)
        return x.clamp(0, 1) * 2 - 1


MODELS = {"gan": GAN, "vae": VAE, "flow": Flow}


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


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=list(MODELS), default=list(MODELS), help="generators to make")
    args = cli.parse(parser, argv)
    images = benchmark_reals(args.sample)               # the benchmark's reals: the folders its runs use
    for name in args.only:
        folder = own_generator(name, images)
        facts = json.loads((folder / "settings.json").read_text())
        print(f"{name}: {facts['samples']} samples in {folder.relative_to(REPO_ROOT)}; trained "
              f"{facts['settings']['steps']} steps on {facts['training images']} images in "
              f"{facts['training seconds']:.0f} s ({facts['seconds with sampling']:.0f} s with sampling, "
              f"{facts['parameters']:,} parameters)")
    print(f"audit each one: python code/audit.py {OWN_DIR.relative_to(REPO_ROOT)}/NAME-KEY "
          f"--real data/CIFAKE/test/REAL")


if __name__ == "__main__":
    cli.run(main)
