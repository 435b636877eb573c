"""The study's figures (matplotlib). Each function draws one figure and returns it."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from realfake import LABEL_NAMES

# The shipped models as the paper's tables name them; other names are shown as they are.
MODEL_NAMES = {"base_model": "base", "attn_model": "attention", "mini_model": "mini", "strong_model": "strong",
               "strong_aug_model": "strong + aug"}


def shown(name):
    return MODEL_NAMES.get(name, name)


def training_curves(histories):
    """Train loss, validation loss and validation accuracy per epoch, one line per model.
    `histories`: {name: [per-epoch records as train_model writes them]}."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, epochs in histories.items():
        frame = pd.DataFrame(epochs)
        line, = ax_loss.plot(frame["epoch"], frame["train_loss"], marker="o", label=f"{shown(name)} train")
        ax_loss.plot(frame["epoch"], frame["val_loss"], marker="s", ls="--", color=line.get_color(),
                     label=f"{shown(name)} validation")
        ax_acc.plot(frame["epoch"], frame["val_accuracy"], marker="o", color=line.get_color(), label=shown(name))
    ax_loss.set(xlabel="epoch", ylabel="BCE loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy at 0.5", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_curves(sweep, title=""):
    """Accuracy, precision, recall and F1 against the threshold (a table from metrics.threshold_sweep)."""
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
        ax.plot(fpr, tpr, label=shown(name))
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
    ax = table.rename(index=lambda group: str(group).replace("_", " "), columns=shown).plot.bar(
        figsize=(max(7, 0.4 * len(table)), 4), width=0.8)
    if reference is not None:
        ax.axhline(reference, color="grey", ls=":", lw=1)
    ax.set(ylabel=ylabel, xlabel="", ylim=(max(0, table.min().min() - 0.1), 1.0), title=title)
    ax.tick_params(axis="x", labelrotation=60)
    plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))     # beside the plot: clear of the title
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
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 5.6), sharex=True)
    for ax, (metric, label) in zip(axes, (("accuracy", "accuracy at 0.5"), ("auroc", "AUROC"))):
        wide = table[metric].unstack("model").rename(columns=shown)
        wide.loc[list(dict.fromkeys(table.index.get_level_values(0)))].plot.bar(ax=ax, width=0.8, legend=False)
        ax.set(ylabel=label, ylim=(0.4, 1.0), xlabel="")
        ax.grid(axis="y", alpha=0.3)
    axes[1].tick_params(axis="x", labelrotation=30)
    plt.setp(axes[1].get_xticklabels(), ha="right", rotation_mode="anchor")
    axes[0].legend(fontsize=8, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout()
    return fig


def explanation_grid(images, maps, p_real, labels, overlays, title=""):
    """One row per image: the image, its heat map and the overlay, with P(real) and the true label."""
    fig, axes = plt.subplots(len(images), 3, figsize=(4.2, 1.5 * len(images)), squeeze=False)
    for row, (image, heat, p, label, blended) in enumerate(zip(images, maps, p_real, labels, overlays)):
        axes[row, 0].imshow(np.asarray(image).transpose(1, 2, 0))
        axes[row, 1].imshow(heat, cmap="jet", vmin=0, vmax=1)
        axes[row, 2].imshow(blended)
        axes[row, 0].set_ylabel(caption(p, label), fontsize=9, rotation=0, ha="right", va="center")
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, name in zip(axes[0], ("image", "heat map", "overlay")):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gate_histograms(gates, labels):
    """The distribution of each SRM channel's gate value on REAL and FAKE images."""
    labels = np.asarray(labels)
    channels = gates.shape[1]
    columns = min(3, channels)
    rows = -(-channels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.5 * columns, 2.1 * rows), sharex=True, squeeze=False)
    for c, ax in enumerate(axes.flat):
        if c >= channels:
            ax.axis("off")
            continue
        for label in (1, 0):
            ax.hist(gates[labels == label, c], bins=40, range=(0, 1), alpha=0.6, density=True, label=LABEL_NAMES[label])
        ax.set_title(f"channel {c}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("gate value")
    for ax in axes[:, 0]:
        ax.set_ylabel("density")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def reliability_diagrams(tables):
    """Accuracy against confidence in the predicted label per bin (metrics.reliability_table), before and after
    calibration: `tables` is {model: {"before": table, "after": table}}; the diagonal is perfect calibration."""
    columns = min(3, len(tables))
    rows = -(-len(tables) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(tables):]:
        ax.axis("off")
    for ax, (name, pair) in zip(axes.flat, tables.items()):
        for when, table in pair.items():
            ax.plot(table["confidence"], table["accuracy"], marker="o", ms=3, label=when)
        ax.plot([0.5, 1], [0.5, 1], color="grey", ls=":", lw=1)
        ax.set(xlabel="confidence in the call", title=shown(name), xlim=(0.5, 1), ylim=(0.4, 1))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("share called right")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def matrix_heatmap(values, in_domain):
    """The transfer matrix (rows: detectors, columns: figures in [0, 1]) as a heat map, each cell's value written in
    it and in-domain cells (in_domain: {row: its columns}) framed."""
    fig, ax = plt.subplots(figsize=(1.3 * len(values.columns) + 2, 0.55 * len(values) + 1.6))
    ax.imshow(values.to_numpy(dtype=float), cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for i, row in enumerate(values.index):
        for j, column in enumerate(values.columns):
            ax.text(j, i, f"{values.iloc[i, j]:.3f}", ha="center", va="center", fontsize=8)
            if column in in_domain[row]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=2, edgecolor="black"))
    ax.set_xticks(range(len(values.columns)), [c.replace(" AUROC", "\nAUROC").replace(", ", ",\n")
                                                for c in values.columns], fontsize=7)
    ax.set_yticks(range(len(values)), values.index, fontsize=8)
    ax.set_title("What each training set and backbone carries where (framed: in-domain)", fontsize=9)
    return fig
