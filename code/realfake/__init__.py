"""realfake: everything the study's commands and notebooks share beyond `classes.py`, grouped by role.

Sub-packages, each importing only those before it (tests/test_layout.py checks it):

    data        image files, datasets, inputs, perturbations, duplicates and splits, the sample data
    models      networks, the pretrained backbone and its feature cache, checkpoints, running a model
    training    recipes, the loop, the training pools, fake makers, own generators, the backbone's fits
    evaluation  scoring files and datasets, robustness, the shortcut audit, explanations
    studies     the transfer variants and benchmark, the matrix, the zero-shot detector, the seed study
    publishing  the report's sections, figures, the README's tables, the model card

Below them all: `project` (paths, config.json, device, seeding), `rules` (every rule that decides what ships or what
predict.py uses), `metrics` (figures from labels and scores) and the label convention here. `classes.py` (the study's
CIFAKE / CIFAR-100 / AGIRI loaders, CNN and SRM layer) sits between data and models. `cli` is the commands' own.
"""

REAL, FAKE = 1, 0                       # the CIFAKE paper's and the original study's convention
LABEL_NAMES = {FAKE: "Fake", REAL: "Real"}
