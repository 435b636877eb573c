"""Train a real-vs-fake detector on the CIFAKE training split.

    python code/train.py -ep 10 -mf base_model                  # the original study's base model
    python code/train.py -ep 10 --attn -mf attn_model           # with the SRM attention layer
    python code/train.py --recipe fast -mf fast_model           # the fast recipe (recipes.RECIPES)
    python code/train.py --arch strong --recipe strong -mf strong_model
    python code/train.py --arch strong --recipe strong_fast --widths 24,48,96   # about a sixth of the time
    python code/train.py -ep 1 --sample                         # a quick run on the generated sample data
    python code/train.py --recipe fast --fakes my_gan/ -mf my_detector  # teach it your own generator too
    torchrun --standalone --nproc_per_node=2 code/train.py --recipe fast -mf fast_model  # 2 processes (DDP)
    python code/train.py --arch pretrained --dataset agiri -mf agiri_model   # full-size detector (pretrained.py)
    python code/train.py --arch pretrained --dataset photos -mf photo_model  # one that keeps photographs real
    python code/train.py --arch pretrained -mf pretrained_model      # CIFAKE on the backbone (pretrained.py)

A recipe (recipes.RECIPES) sets every hyper-parameter; the flags below override single values. A stratified,
seeded validation split is carved from the training data; the decision threshold stored with the model is
chosen on it, never on the test set. The model is saved (models/<name>.pth and a JSON sidecar) only with -mf.
With --fakes, every image below each folder joins the FAKE class as a source of its own, each source an equal
share of every epoch's fakes, after an audit against CIFAKE's real test images; the sidecar records each folder,
its file count and a digest of its files. Under torchrun each process trains on its slice of every batch and
only rank 0 writes (distributed.py).

--arch pretrained trains on the frozen ImageNet-pretrained backbone (backbone.py): on CIFAKE a linear probe at each
input size, then the last blocks fine-tuned, the best chosen (and its temperature and threshold fitted) on the
validation split; on the AGIRI train subset (--dataset agiri) the
full-size detector, whose taps, augmentation, regularisation and fine-tuning (--finetune N fixes it) are chosen by
cross-validation after a test fold is held out (pretrained.py says how).
"""
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realfake import cli
from realfake.data.imagefiles import find_image_files
from realfake.evaluation import audit
from realfake.models.backbone import BACKBONES
from realfake.models.networks import ARCHITECTURES
from realfake.project import ProjectError, absolute, cifake_root, model_path, pick_device, shown
from realfake.training import distributed
from realfake.training.loop import train_and_save, train_pretrained
from realfake.training.recipes import RECIPES

MIN_FAKES_PER_SOURCE = 50       # fewer images than this would be repeated to fill a source's share of each epoch


def cli_parser():
    parser = cli.parser(__doc__, data="CIFAKE folder")
    parser.add_argument("-mf", "--model-file", help="save to models/<name>.pth, or to this path (only when given)")
    parser.add_argument("--recipe", choices=RECIPES, default="original", help="hyper-parameter set (default original)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="cnn",
                        help="cnn (the study's), strong, patch, or pretrained (the frozen ImageNet backbone)")
    parser.add_argument("--dataset", choices=["cifake", "agiri", "photos"], default="cifake",
                        help="--arch pretrained: CIFAKE's training split, the AGIRI train subset, or it and the real "
                             "photographs (photo_model; config.json names the folders)")
    parser.add_argument("--backbone", choices=BACKBONES, default="efficientnet-lite0", help="--arch pretrained")
    parser.add_argument("--image-size", type=cli.positive_int,
                        help="--arch pretrained: the backbone's input size in pixels (default: 224 on AGIRI, chosen "
                             "on validation on CIFAKE)")
    parser.add_argument("--finetune", type=int, metavar="N",
                        help="--arch pretrained: also train the last N blocks (0: a linear probe; default: chosen by "
                             "cross-validation on AGIRI, on validation on CIFAKE)")
    parser.add_argument("--attn", action="store_true", help="add the SRM channel-attention layer (arch cnn)")
    parser.add_argument("--widths", type=lambda text: tuple(int(w) for w in text.split(",")), metavar="W1,W2,W3",
                        help="stage widths of the strong network (default 32,64,112; strong_aug_model: 32,64,96)")
    parser.add_argument("-ep", "--epochs", type=cli.positive_int)
    parser.add_argument("-bs", "--batch-size", type=cli.positive_int)
    parser.add_argument("-lr", "--lr", type=float, help="learning rate (the peak, with a one-cycle schedule)")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"])
    parser.add_argument("--momentum", type=float)
    parser.add_argument("-wd", "--weight-decay", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--shift", type=int, help="random shifts of up to SHIFT pixels in training (0: none)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--val-fraction", type=float)
    parser.add_argument("--augment", help="train-time augmentation: blur, jpeg or blur,jpeg")
    parser.add_argument("--amp", action="store_true", default=None,
                        help="bfloat16 autocast where it is fast (CUDA, or a CPU with AVX512-BF16/AMX)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="float32 throughout")
    parser.add_argument("--compile", action="store_true", default=None,
                        help="torch.compile the training step (faster after 10-40 s of compiling on a 2-core CPU)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager mode throughout")
    parser.add_argument("--fakes", nargs="+", metavar="DIR", help="folders of your generator's images, added to the "
                        "FAKE class (any format and size, searched recursively)")
    parser.add_argument("--log-every", type=int, default=0, metavar="N",
                        help="log loss, running and validation accuracy every N batches")
    return parser


def main(argv=None):
    args = cli.parse(cli_parser(), argv)
    with distributed.joined(pick_device(args.device)) as (world, device):    # one process unless under torchrun
        train(args, world, device)


# Flags only one kind of training reads: given to the other, they would be ignored without a word
PRETRAINED_ONLY = ("backbone", "image_size", "finetune")
SCRATCH_ONLY = ("recipe", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "label_smoothing",
                "shift", "val_fraction", "augment", "amp", "compile", "fakes", "attn", "widths", "log_every")


def refuse_unread_flags(args):
    """One line naming every flag given that the chosen --arch does not read."""
    defaults = vars(cli_parser().parse_args([]))
    unread = SCRATCH_ONLY if args.arch == "pretrained" else PRETRAINED_ONLY
    given = [f"--{name.replace('_', '-')}" for name in unread if getattr(args, name) != defaults[name]]
    if given:
        reads = ("its choices from validation or cross-validation (pretrained.py), and --seed" if args.arch ==
                 "pretrained" else "a recipe's hyper-parameters")
        raise ProjectError(f"--arch {args.arch} does not read {', '.join(given)} (it takes {reads}): drop them")


def train(args, world, device):
    """The recipe with the flags' overrides, the audit of any --fakes folders, then training (and saving)."""
    refuse_unread_flags(args)
    if args.arch == "pretrained":
        path = model_path(args.model_file) if args.model_file else None
        return train_pretrained(args.dataset, path, args.data, args.sample, args.backbone, args.image_size,
                                args.finetune, args.seed or 0, device)
    if args.dataset != "cifake":
        raise ProjectError(f"--dataset {args.dataset} trains a full-size detector: give --arch pretrained too")
    overrides = {k: v for k, v in vars(args).items() if k in RECIPES["original"].__dataclass_fields__ and v is not None}
    if args.augment is not None:
        overrides["augment"] = tuple(a for a in args.augment.split(",") if a)
    recipe = replace(RECIPES[args.recipe], **overrides)
    arch_kwargs = {"attn": args.attn} if args.arch == "cnn" else {}
    if args.attn and args.arch != "cnn":
        raise ProjectError("--attn adds SRM attention to the study's CNN (--arch cnn) only")
    if args.widths:
        if args.arch != "strong" or len(args.widths) != 3:
            raise ProjectError("--widths takes three comma-separated widths, with --arch strong only")
        arch_kwargs["widths"] = args.widths
    path = model_path(args.model_file) if args.model_file else None
    root, extra = cifake_root(args.data, args.sample), {}
    if args.fakes:
        folders = [absolute(folder) for folder in args.fakes]
        for folder in folders:
            found = len(find_image_files([folder]))
            if found < MIN_FAKES_PER_SOURCE:
                raise ProjectError(f"--fakes {shown(folder)}: {found} file{'' if found == 1 else 's'} found, a source "
                                   f"needs at least {MIN_FAKES_PER_SOURCE} (each fills an equal share of every epoch's "
                                   f"fakes, so a few images would be repeated thousands of times): give a folder "
                                   f"of more images")
        extra["fakes"], lines = audit.audit_fake_folders(folders, root / "test" / "REAL")
        print("\n".join(lines))
        sources = recipe.train_fakes + tuple(f"folder:{folder}" for folder in folders)
        recipe = replace(recipe, train_fakes=sources, balance="sources", fake_shares=())
    train_and_save(recipe, args.arch, arch_kwargs, root, path, device, args.sample, args.log_every, extra, world)


if __name__ == "__main__":
    cli.run(main)
