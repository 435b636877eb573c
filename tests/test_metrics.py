"""metrics.py: every figure from labels and scores against hand-computed values: accuracy, AUROC, the threshold,
bootstrap intervals, calibration."""
import numpy as np
import pytest

from realfake.metrics import (
    accuracy_by_group,
    bootstrap_intervals,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    probability,
    rank_auroc,
    reliability_table,
    score_at_threshold,
    share_called_real,
    shown_interval,
    threshold_sweep,
)


def test_metrics_against_hand_computed_values():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7, 0.2])
    r = score_at_threshold(labels, scores, 0.5)
    # called real: 0.6, 0.8, 0.9, 0.7 -> TP 3 (0.8, 0.9, 0.7), FP 1 (0.6), FN 2 (0.4, 0.2), TN 2
    assert r["accuracy"] == 5 / 8 and r["confusion"] == [[2, 1], [2, 3]]
    assert r["per_class"]["Real"]["precision"] == 3 / 4 and r["per_class"]["Real"]["recall"] == 3 / 5
    assert r["per_class"]["Fake"]["precision"] == 2 / 4 and r["per_class"]["Fake"]["recall"] == 2 / 3
    assert r["per_class"]["Real"]["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    # AUROC: of the 15 (real, fake) pairs the real one scores higher in 3 + 2 + 3 + 3 + 1 = 12
    assert r["auroc"] == pytest.approx(12 / 15)
    sweep = threshold_sweep(labels, scores)
    assert list(sweep["threshold"]) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert sweep.loc[sweep.threshold == 0.5, "accuracy"].item() == 5 / 8
    assert sweep.loc[sweep.threshold == 0.1, "recall"].item() == 1.0


def test_threshold_choice_maximises_balanced_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.9])
    threshold = choose_threshold(labels, scores)
    assert 0.2 < threshold <= 0.25 and score_at_threshold(labels, scores, threshold)["accuracy"] == 1.0


def test_bootstrap_intervals_bracket_the_figures_and_narrow_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (400, 6400):
        labels = rng.integers(0, 2, n)
        scores = np.clip(0.5 + (labels - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)     # about 79% accurate
        intervals = bootstrap_intervals(labels, scores, 0.5)
        point = score_at_threshold(labels, scores, 0.5)
        for metric in ("accuracy", "auroc"):
            low, high = intervals[metric]
            assert low < point[metric] < high
        widths.append(intervals["accuracy"][1] - intervals["accuracy"][0])
        assert intervals == bootstrap_intervals(labels, scores, 0.5)                    # seeded
    binomial = 2 * 1.96 * np.sqrt(0.79 * 0.21 / 6400)                                   # normal approximation
    assert widths[0] == pytest.approx(4 * widths[1], rel=0.25) and widths[1] == pytest.approx(binomial, rel=0.15)
    perfect = bootstrap_intervals(np.array([0, 0, 1, 1] * 10), np.array([0.1, 0.2, 0.8, 0.9] * 10))
    assert perfect == {"accuracy": (1.0, 1.0), "auroc": (1.0, 1.0)}


def test_one_class_sets_have_no_auroc_and_group_shares():
    scores = np.array([0.9, 0.2, 0.7, 0.6, 0.1])
    r = score_at_threshold(np.ones(5, int), scores, 0.5)
    assert r["auroc"] is None and r["called_real"] == 3 / 5
    table = share_called_real(scores, [0, 0, 1, 1, 1], ["cats", "dogs"])
    assert table.loc["cats", "share_real"] == 0.5 and table.loc["dogs", "share_real"] == pytest.approx(2 / 3)
    assert table.loc["dogs", "n"] == 3 and table.loc["cats", "mean_p_real"] == pytest.approx(0.55)
    by = accuracy_by_group(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.3, 0.6]), [0, 0, 1, 1], ["a", "b"])
    assert by.loc["a", "accuracy"] == 1.0 and by.loc["b", "accuracy"] == 0.0


@pytest.mark.parametrize("true_temperature", [0.5, 3.0])
def test_temperature_scaling_recovers_a_known_temperature(true_temperature):
    rng = np.random.default_rng(0)
    calibrated = rng.normal(0, 2, 40_000)                        # logits whose sigmoid is the true P(real)
    labels = (rng.random(len(calibrated)) < probability(calibrated)).astype(int)
    logits = calibrated * true_temperature                      # over- (T > 1) or under-confident (T < 1)
    temperature = fit_temperature(labels, logits)
    assert temperature == pytest.approx(true_temperature, rel=0.05)
    before = expected_calibration_error(labels, probability(logits))
    after = expected_calibration_error(labels, probability(logits, temperature))
    assert after < 0.01 < before


def test_expected_calibration_error_against_a_hand_computed_example():
    labels = np.array([1, 1, 0, 0])
    scores = np.array([0.9, 0.6, 0.3, 0.8])
    # confidence in the call / right?: 0.9 yes, 0.6 yes, 0.7 yes (called fake), 0.8 no (called real)
    assert expected_calibration_error(labels, scores) == pytest.approx((0.1 + 0.4 + 0.3 + 0.8) / 4)
    table = reliability_table(labels, scores)
    assert table["n"].sum() == 4 and table.loc["0.800-0.867", "accuracy"] == 0.0
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_bootstrap_intervals_of_the_class_shares_and_ap_bracket_the_figures():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 800)
    scores = np.clip(0.5 + (labels - 0.5) * 0.4 + rng.normal(0, 0.25, 800), 0, 1)
    intervals = bootstrap_intervals(labels, scores, 0.5, metrics=("ap", "fakes_caught", "reals_kept"))
    point = score_at_threshold(labels, scores, 0.5)
    assert set(intervals) == {"ap", "fakes_caught", "reals_kept"}
    for key, value in (("ap", point["ap"]), ("fakes_caught", point["per_class"]["Fake"]["recall"]),
                       ("reals_kept", point["per_class"]["Real"]["recall"])):
        low, high = intervals[key]
        assert low < value < high and high - low < 0.15


def test_bootstrap_resamples_within_each_class_and_declines_tiny_classes():
    labels, scores = np.array([0, 0, 0] + [1] * 200), np.r_[0.1, 0.6, 0.7, np.linspace(0.2, 1, 200)]
    intervals = bootstrap_intervals(labels, scores, 0.5, metrics=("accuracy", "auroc", "fakes_caught", "reals_kept"))
    assert intervals["auroc"] is None and intervals["fakes_caught"] is None and intervals["accuracy"] is None
    low, high = intervals["reals_kept"]
    assert low <= score_at_threshold(labels, scores, 0.5)["per_class"]["Real"]["recall"] <= high
    labels, scores = np.array([0] * 5 + [1] * 500), np.r_[np.linspace(0, 0.4, 5), np.linspace(0.3, 1, 500)]
    low, high = bootstrap_intervals(labels, scores, 0.5, metrics=("fakes_caught",))["fakes_caught"]
    assert low == high == 1.0                        # every resample holds exactly five fakes, all caught: no nan
    assert shown_interval(None).startswith("(no interval") and shown_interval((0.1, 0.25), 2) == "(0.10-0.25)"


def test_the_rank_auroc_matches_scikit_learn_with_ties_and_in_batches():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, (5, 300))
    scores = np.round(rng.random((5, 300)) + 0.3 * labels, 1)                  # rounded: many ties
    assert np.allclose(rank_auroc(labels, scores), [roc_auc_score(y, s) for y, s in zip(labels, scores)])
