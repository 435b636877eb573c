"""The study's figures (matplotlib). Each function draws one figure and returns it."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from classes import LABEL_NAMES


def training_curves(histories):
    """Train loss, validation loss and validation accuracy per epoch, one line per model.
    `histories`: {name: [per-epoch records as train_model writes them]}."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, epochs in histories.items():
        frame = pd.DataFrame(epochs)
        line, = ax_loss.plot(frame["epoch"], frame["train_loss"], marker="o", label=f"{name} train")
        ax_loss.plot(frame["epoch"], frame["val_loss"], marker="s", ls="--", color=line.get_color(),
                     label=f"{name} validation")
        ax_acc.plot(frame["epoch"], frame["val_accuracy"], marker="o", color=line.get_color(), label=name)
    ax_loss.set(xlabel="epoch", ylabel="BCE loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy at 0.5", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_curves(sweep, title=""):
    """Accuracy, precision, recall and F1 against the threshold (a table from evaluate.threshold_sweep)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for column in ("accuracy", "precision", "recall", "f1"):
        ax.plot(sweep["threshold"], sweep[column], marker="o", label=column)
    ax.set(xlabel="threshold on P(real)", ylabel="score", title=title, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def roc_curves(labels, scores_by_model, title=""):
    """ROC curves of several models on one labelled set."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for name, scores in scores_by_model.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set(xlabel="false real rate (fakes called real)", ylabel="true real rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def learning_curve(steps, title=""):
    """Running training loss / accuracy and validation accuracy against the number of images seen."""
    frame = pd.DataFrame(steps)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_loss.plot(frame["images_seen"], frame["loss"], label="training (running)")
    ax_loss.plot(frame["images_seen"], frame["val_loss"], label="validation")
    ax_acc.plot(frame["images_seen"], frame["accuracy"], label="training (running)")
    ax_acc.plot(frame["images_seen"], frame["val_accuracy"], label="validation")
    for level in (0.8, 0.9):
        ax_acc.axhline(level, color="grey", ls=":", lw=1)
    ax_loss.set(xlabel="training images seen", ylabel="BCE loss", title=f"loss {title}")
    ax_acc.set(xlabel="training images seen", ylabel="accuracy", title=f"accuracy {title}", ylim=(0.4, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def grouped_bars(table, ylabel, title="", reference=None):
    """A bar per model (column) for each group (row) of `table`; optional horizontal reference line."""
    ax = table.plot.bar(figsize=(max(6, 0.55 * len(table)), 4), width=0.8)
    if reference is not None:
        ax.axhline(reference, color="grey", ls=":", lw=1)
    ax.set(ylabel=ylabel, title=title, ylim=(max(0, table.min().min() - 0.1), 1.0))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def image_grid(images, captions, columns=8, title=""):
    """uint8 images (N x 3 x H x W) in a grid, each with a caption."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(np.asarray(image).transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def caption(p_real, label):
    """'P(real) 0.03 / true Real' for a grid caption."""
    return f"P(real) {p_real:.2f}\ntrue {LABEL_NAMES[int(label)]}"


def robustness_bars(table):
    """Accuracy and AUROC per perturbation (rows) and model (bars), from robustness.perturbation_table."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    for ax, metric in zip(axes, ("accuracy", "auroc")):
        wide = table[metric].unstack("model")
        wide.loc[list(dict.fromkeys(table.index.get_level_values(0)))].plot.bar(ax=ax, width=0.8)
        ax.set(ylabel=metric, title=f"{metric} under perturbation", ylim=(0.4, 1.0), xlabel="")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
