"""publishing/figures.py: every figure draws, and its title, legend and axis labels never cover one another."""
import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

from realfake.publishing import figures

matplotlib.use("Agg")


def text_boxes(fig):
    """{name: window extent} of the figure's title, and each axes' title, legend and axis labels, as drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = {}
    if fig._suptitle is not None and fig._suptitle.get_text():
        boxes["suptitle"] = fig._suptitle.get_window_extent(renderer)
    for i, ax in enumerate(fig.axes):
        parts = {"title": ax.title, "xlabel": ax.xaxis.label, "ylabel": ax.yaxis.label, "legend": ax.get_legend()}
        for name, artist in parts.items():
            if artist is not None and artist.get_visible() and (name == "legend" or artist.get_text()):
                boxes[f"axes {i} {name}"] = artist.get_window_extent(renderer)
    return boxes


def overlaps(fig):
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(text_boxes(fig).items(), 2)
            if box_a.overlaps(box_b)]


rng = np.random.default_rng(0)


bars = pd.DataFrame(rng.uniform(0.4, 1.0, (24, 3)), columns=["ddpm-cifar10-32", "ddpm-retrained", "gan-small"],
                    index=[f"variant_{i}" for i in range(24)])


robustness = pd.DataFrame({"accuracy": rng.uniform(0.5, 1, 6), "auroc": rng.uniform(0.5, 1, 6)},
                          index=pd.MultiIndex.from_product([["clean", "jpeg 50", "blur 1"], ["a_model", "b_model"]],
                                                           names=["perturbation", "model"]))


reliability = pd.DataFrame({"n": [10, 20], "confidence": [0.6, 0.9], "accuracy": [0.55, 0.92]})


FIGURES = {
    "grouped bars (generators)": lambda: figures.grouped_bars(bars, "AUROC", "each generator against CIFAKE's test "
                                                              "reals", reference=0.5),
    "grouped bars (few groups)": lambda: figures.grouped_bars(bars.head(3), "share called real", "CIFAR-100"),
    "robustness": lambda: figures.robustness_bars(robustness),
    "reliability": lambda: figures.reliability_diagrams({m: {"before": reliability, "after": reliability}
                                                         for m in ("base_model", "attn_model", "strong_model")}),
    "sweep": lambda: figures.sweep_curves(pd.DataFrame({"threshold": [0.1, 0.5, 0.9], **{
        k: [0.5, 0.9, 0.5] for k in ("accuracy", "precision", "recall", "f1")}}), "base_model on CIFAKE/test"),
    "roc": lambda: figures.roc_curves(np.array([0, 1] * 20), {"a": rng.uniform(size=40)}, "CIFAKE/test"),
    "training curves": lambda: figures.training_curves({"a": [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_accuracy": 0.9} for e in (1, 2, 3)]}),
    "gates": lambda: figures.gate_histograms(rng.uniform(size=(50, 6)), rng.integers(0, 2, 50)),
}


@pytest.mark.parametrize("name", FIGURES)
def test_no_text_of_a_figure_covers_another(name):
    fig = FIGURES[name]()
    assert not overlaps(fig), overlaps(fig)


def test_the_check_sees_a_legend_over_a_title():
    fig = figures.grouped_bars(bars, "AUROC", "a title")
    ax = fig.axes[0]
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0))                     # the old layout's failure
    assert ("axes 0 title", "axes 0 legend") in overlaps(fig)


def test_figures_name_the_models_as_the_tables_do():
    """Legends and panel titles say base, attention, mini, strong, strong + aug, as the paper's tables do."""
    shipped = pd.DataFrame(rng.uniform(0.5, 1, (2, 2)), columns=["base_model", "strong_aug_model"], index=["g1", "g2"])
    legend = [t.get_text() for t in figures.grouped_bars(shipped, "AUROC").axes[0].get_legend().get_texts()]
    assert legend == ["base", "strong + aug"]
    roc = figures.roc_curves(np.array([0, 1] * 20), {"attn_model": rng.uniform(size=40)})
    assert [t.get_text() for t in roc.axes[0].get_legend().get_texts()] == ["attention"]
    table = robustness.rename(index={"a_model": "mini_model", "b_model": "strong_model"}, level="model")
    assert [t.get_text() for t in figures.robustness_bars(table).axes[0].get_legend().get_texts()] == ["mini", "strong"]
    panels = figures.reliability_diagrams({"base_model": {"before": reliability, "after": reliability}})
    assert panels.axes[0].get_title() == "base" and figures.shown("my_model") == "my_model"
