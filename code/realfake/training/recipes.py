"""Every hyper-parameter of a training run in one frozen `Recipe`, the named `RECIPES`, and the shipped models
(`SHIPPED_MODELS`: a recipe and an architecture each) with the command that trains each one."""
from dataclasses import dataclass, field, replace

from realfake.data.inputs import INPUTS
from realfake.data.perturb import AUGMENTATIONS
from realfake.data.splits import VAL_FRACTION
from realfake.models.generators import MODELS as OWN_MODELS
from realfake.project import ProjectError
from realfake.training.fake_makers import FAKE_MAKERS

OPTIMIZERS, SCHEDULES, BALANCES = ("sgd", "adamw"), ("constant", "onecycle"), ("pooled", "sources")


@dataclass(frozen=True)
class Recipe:
    """Every hyper-parameter of a training run. The loss is always BCEWithLogitsLoss on the logit of P(real)."""
    name: str = "original"
    optimizer: str = "sgd"          # sgd (momentum, optionally Nesterov) or adamw (default betas)
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.001               # the constant rate, or the peak of the one-cycle schedule
    momentum: float = 0.9           # SGD only
    nesterov: bool = False          # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"      # constant, or onecycle (ONE_CYCLE, stepped once per batch)
    label_smoothing: float = 0.0    # targets y * (1 - s) + s / 2
    flip: bool = False              # random horizontal flips of half of each batch
    shift: int = 0                  # random shifts of up to this many pixels, per image (reflection-padded)
    augment: tuple = ()             # "blur" and/or "jpeg": perturb.augment, redrawn each epoch
    amp: bool = False               # bfloat16 autocast, only where it is fast (project.fast_bfloat16)
    compile: bool = False           # torch.compile the training forward pass (needs a C++ compiler on CPU)
    test_flip: bool = False         # StrongCNN at test time: average the logits of each view and its mirror
    test_shift: int = 0             # StrongCNN at test time: ... and of the image moved k pixels 4 ways
    input: str = "rgb"              # the network's input transform (data/inputs.INPUTS), kept in its checkpoint
    colour_jitter: float = 0.0      # brightness, contrast, saturation jitter this strong (perturb.jitter_colour)
    patch_shuffle: int = 0          # tiles of this size shuffled in half of the images (perturb.shuffle_patches)
    train_fakes: tuple = ("cifake",)  # the FAKE class: cifake (SD 1.4), fake-makers (fake_makers.FAKE_MAKERS) run
    #                                   on the REAL training images, generator:NAME (a fixed half of a development
    #                                   generator), generator:NAME:all (all of it), own:NAME (own_generators.py),
    #                                   folder:PATH (any images)
    balance: str = "pooled"         # pooled: one pool of fakes, the smaller class oversampled; sources: each source
    #                                 of train_fakes its share of every epoch's FAKE class (redrawn each epoch),
    #                                 fakes = reals
    fake_shares: tuple = ()         # balance "sources": each train_fakes source's weight, in order (empty: equal)
    seed: int = 0                   # weights, batch order, augmentation and the validation split
    val_fraction: float = VAL_FRACTION  # share of the training split held out (stratified by label and class)

    def __post_init__(self):
        """Refuse values no run could use, in one line, before any data is loaded."""
        problems = [f"{name} must be {rule}, got {getattr(self, name)!r}" for name, ok, rule in (
            ("optimizer", self.optimizer in OPTIMIZERS, " or ".join(OPTIMIZERS)),
            ("schedule", self.schedule in SCHEDULES, " or ".join(SCHEDULES)),
            ("epochs", self.epochs >= 1, "at least 1"), ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr", self.lr > 0, "above 0"), ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
            ("shift", self.shift >= 0, "at least 0"), ("test_shift", self.test_shift >= 0, "at least 0"),
            ("val_fraction", 0 < self.val_fraction < 1, "in (0, 1)"),
            ("augment", set(self.augment) <= set(AUGMENTATIONS), f"a selection of {', '.join(AUGMENTATIONS)}"),
            ("input", self.input in INPUTS, f"one of {', '.join(INPUTS)}"),
            ("colour_jitter", 0 <= self.colour_jitter < 1, "in [0, 1)"),
            ("patch_shuffle", self.patch_shuffle in (0, 2, 4, 8, 16), "0, 2, 4, 8 or 16 (a divisor of 32)"),
            ("train_fakes", len(self.train_fakes) > 0 and all(
                source == "cifake" or source in FAKE_MAKERS or source.startswith(("generator:", "folder:"))
                or source in OWN_SOURCES for source in self.train_fakes),
             f"a selection of cifake, {', '.join(FAKE_MAKERS)}, {', '.join(OWN_SOURCES)}, generator:NAME[:all], "
             f"folder:PATH"),
            ("balance", self.balance in BALANCES, " or ".join(BALANCES)),
            ("fake_shares", not self.fake_shares or (len(self.fake_shares) == len(self.train_fakes) and min(
                self.fake_shares) >= 0 and sum(self.fake_shares) > 0), "one weight >= 0 per train_fakes source"))
            if not ok]
        if problems:
            raise ProjectError(f"recipe {self.name}: " + "; ".join(problems))


OWN_SOURCES = tuple(f"own:{name}" for name in OWN_MODELS)


# One-cycle schedule: linear warm-up over the first quarter of the steps from lr/25 to lr, then linear decay to
# lr/25,000.
ONE_CYCLE = dict(pct_start=0.25, div_factor=25.0, final_div_factor=1000.0, anneal_strategy="linear")


RECIPES = {recipe.name: recipe for recipe in (
    # The original study's, for replication: plain SGD at a constant lr, batch 32, float32.
    Recipe("original"),
    # Fast (base CNN): AdamW for three epochs at batch 256, one-cycle to lr 0.005, bfloat16 where that is fast;
    # the best on validation of four searches (notes/results.md, "The fast recipe").
    Recipe("fast", optimizer="adamw", epochs=3, batch_size=256, lr=0.005, weight_decay=0.01, schedule="onecycle",
           amp=True),
    # Strong (StrongCNN): one-cycle SGD, longer, with weight decay, mild label smoothing, flips and 2-pixel shifts
    # (without shifts it fits the training split to 99.99% and stalls at 97.5% on validation), averaged over 10
    # test-time views; 30 epochs fit the 60-minute budget on a 2-core AVX512-BF16 CPU in bfloat16.
    Recipe("strong", epochs=30, batch_size=256, lr=0.1, nesterov=True, weight_decay=5e-4, schedule="onecycle",
           label_smoothing=0.05, flip=True, shift=2, amp=True, test_flip=True, test_shift=1),
)}


# Strong in about a sixth of its time (notes/results.md, 14; chosen on validation): six compiled epochs with
# FAST_STRONG's narrower network; 1.5 points less accurate on test.
RECIPES["strong_fast"] = replace(RECIPES["strong"], name="strong_fast", epochs=6, compile=True)


# Strong plus CNNSpot-style blur and JPEG augmentation: robust to blur and resizing, 0.4 points lower when clean.
RECIPES["strong_aug"] = replace(RECIPES["strong"], name="strong_aug", augment=("blur", "jpeg"))


# The transfer study (notes/results.md, "Other generators"): the fast recipe with one change each, plus the oracles,
# trained on a fixed half of one generator's images against CIFAKE's real training images (never shipped).
TRANSFER_CHANGES = {
    "gray": dict(input="gray"), "standardise": dict(input="standardise"), "jitter": dict(colour_jitter=0.3),
    "highpass": dict(input="highpass"), "npr": dict(input="npr"), "spectrum": dict(input="spectrum"),
    "patchshuffle": dict(patch_shuffle=8), "resample": dict(train_fakes=("cifake", "resample")),
    "autoencoder": dict(train_fakes=("cifake", "autoencoder")),
    "autoencoder_tconv": dict(train_fakes=("cifake", "autoencoder_tconv")),
    "made": dict(train_fakes=("cifake", "resample", "autoencoder", "autoencoder_tconv")),
    "plus_ddpm": dict(train_fakes=("cifake", "generator:ddpm-retrained")),
    "oracle_ddpm": dict(train_fakes=("generator:ddpm-retrained",)),
    "oracle_gan": dict(train_fakes=("generator:gan-small",)),
}


RECIPES.update({f"fast_{key}": replace(RECIPES["fast"], name=f"fast_{key}", **change)
                for key, change in TRANSFER_CHANGES.items()})


# The transfer study's best change on the base CNN carried to StrongCNN: its log-magnitude spectrum as input, the
# strong recipe cut to 12 epochs (under 30 minutes on 2 cores) and no test-time views (a spectrum's magnitude ignores
# circular shifts).
RECIPES["general"] = replace(RECIPES["strong"], name="general", epochs=12, input="spectrum", test_flip=False,
                             test_shift=0)


# The pretrained backbone's detectors (pretrained.fit_cifake) take only the seed, the validation split and the
# training mix (train_fakes, balance) from a recipe; nothing here is a training hyper-parameter of theirs.
RECIPES["pretrained"] = replace(RECIPES["original"], name="pretrained")


PRETRAINED_FIELDS = ("seed", "val_fraction", "train_fakes", "balance", "fake_shares")   # what they do read


@dataclass(frozen=True)
class ModelSpec:
    """A shipped model: a recipe and an architecture (`build_model`'s name and keywords)."""
    recipe: Recipe
    arch: str = "cnn"
    arch_kwargs: dict = field(default_factory=dict)


SAMPLE_EPOCHS = 2                   # the sample data only smoke-tests the pipeline: no shipped recipe runs in full


SHIPPED_MODELS = {
    "base_model": ModelSpec(replace(RECIPES["original"], epochs=10)),
    "attn_model": ModelSpec(replace(RECIPES["original"], epochs=10), "cnn", {"attn": True}),
    "mini_model": ModelSpec(replace(RECIPES["original"], epochs=1)),
    "strong_model": ModelSpec(RECIPES["strong"], "strong", {"widths": (32, 64, 112)}),
    "strong_aug_model": ModelSpec(RECIPES["strong_aug"], "strong", {"widths": (32, 64, 96)}),
}


# The strong_fast recipe's network: not shipped, as it misses the strong model's accuracy (notes/results.md, 14);
# bench.py recipes times it against the strong recipe.
FAST_STRONG = ModelSpec(RECIPES["strong_fast"], "strong", {"widths": (24, 48, 96)})


def train_command(name):
    """The command line that trains shipped model `name` (SHIPPED_MODELS) from scratch."""
    spec = SHIPPED_MODELS[name]
    flags = [f"--arch {spec.arch}"] if spec.arch != "cnn" else []
    if spec.recipe.name != "original":
        flags.append(f"--recipe {spec.recipe.name}")
    if spec.recipe.epochs != RECIPES[spec.recipe.name].epochs:
        flags.append(f"-ep {spec.recipe.epochs}")
    if spec.arch_kwargs.get("attn"):
        flags.append("--attn")
    if "widths" in spec.arch_kwargs:
        flags.append("--widths " + ",".join(map(str, spec.arch_kwargs["widths"])))
    return " ".join(["python code/train.py", *flags, f"-mf {name}"])
