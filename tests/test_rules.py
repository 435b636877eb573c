"""rules.py: the rules' decisions follow from the figures they are given."""
import pytest

from realfake import rules


def test_the_default_model_is_the_best_worst_case_over_the_generators_among_competent_models():
    row = lambda cifake, *generators: {"protocol": "CIFAKE only (shipped)", "CIFAKE test AUROC": cifake,
                                       **{f"{g} AUROC": a for g, a in zip(("g1", "g2"), generators)}}
    results = {"generators": {"development": ["g1", "g2"], "rows": {
        "sharp": row(0.999, 0.45, 0.90), "even": row(0.985, 0.60, 0.62), "weak": row(0.80, 0.70, 0.72),
        "variant": {**row(0.99, 0.9, 0.9), "protocol": "CIFAKE only"}}}}
    chosen = rules.default_model(results)        # "weak" has the best worst case, but fails on CIFAKE itself
    assert chosen["model"] == "even" and chosen["worst on"] == "g1" and chosen["worst-case AUROC"] == 0.60
    assert rules.default_model({}) is None


def test_a_variant_ships_only_with_enough_gain_and_cifake_kept():
    row = lambda mean, cifake, protocol="CIFAKE only": {"protocol": protocol, "mean development AUROC": mean,
                                                        "CIFAKE test AUROC": cifake}
    rows = {"strong_model": row(0.55, 0.998, "CIFAKE only (shipped)"), "small gain": row(0.58, 0.99),
            "loses CIFAKE": row(0.70, 0.95), "qualifies": row(0.61, 0.985), "better": row(0.63, 0.981)}
    decision = rules.variant_shipping_decision(rows)
    assert decision["chosen"] == "better"                     # of the two that qualify, the best mean
    assert {name for name, v in decision["variants"].items() if v["qualifies"]} == {"qualifies", "better"}
    del rows["better"], rows["qualifies"]
    assert rules.variant_shipping_decision(rows)["chosen"] is None


def test_general_model_ships_only_when_its_recipe_gains_enough_and_keeps_cifake():
    rule = rules.GENERAL_RULE
    rows = {rule["against"]: {"protocol": "shipped", "mean AUROC": 0.55},
            rule["recipe"]: {"protocol": "logo", "mean AUROC": 0.66, "CIFAKE test AUROC": 0.99}}
    assert rules.general_decision(rows)["ships"] is True
    rows[rule["recipe"]]["CIFAKE test AUROC"] = 0.97
    assert rules.general_decision(rows)["ships"] is False
    rows[rule["recipe"]].update({"CIFAKE test AUROC": 0.99, "mean AUROC": 0.64})
    assert rules.general_decision(rows) == {**rules.general_decision(rows), "ships": False, "gain": pytest.approx(0.09)}
    assert rules.general_decision({rule["against"]: rows[rule["against"]]})["ships"] is False     # not run yet


def test_no_outside_generator_ships_the_rows_that_beat_the_floor():
    rows = {"CIFAKE only (floor)": {"protocol": "floor", "mean AUROC": 0.56},
            "own: gan": {"protocol": "own", "mean AUROC": 0.62}, "zeroshot: patch": {"protocol": "zeroshot",
                                                                                    "mean AUROC": 0.58}}
    assert rules.no_outside_decision(rows)["ships"] == ["own: gan"]
    assert rules.no_outside_decision({})["ships"] == []


def test_a_full_size_model_gives_verdicts_only_when_every_check_of_the_photo_rule_holds():
    figures = {"AGIRI held-out AUROC, JPEG fakes": 0.96, "left-out sources called fake": {"a": 0.04, "b": 0.03},
               "faces reals called fake": 0.02, "called real": {"a": 0.85, "b": 0.9, "faces (CelebA-HQ)": 0.81}}
    decision = rules.photo_decision(figures)
    assert decision["gives verdicts"] and decision["goal met"]
    assert rules.photo_decision({**figures, "called real": {"a": 0.5}}) == {**decision, "goal met": False}
    failing = {"AGIRI held-out AUROC, JPEG fakes": ("(a) AUROC", 0.89),
               "left-out sources called fake": ("(b) left-out sources", {"a": 0.04, "b": 0.16}),
               "faces reals called fake": ("(c) faces reals", 0.151)}
    for key, (check, value) in failing.items():
        decision = rules.photo_decision({**figures, key: value})
        assert not decision["gives verdicts"] and not decision["goal met"]
        assert [name for name, ok in decision["checks"].items() if not ok] == [check]
    unmeasured = rules.photo_decision({**figures, "faces reals called fake": None})
    assert not unmeasured["gives verdicts"] and not unmeasured["checks"]["(c) faces reals"]
    at_the_edge = {**figures, "left-out sources called fake": {"a": rules.PHOTO_CALLED_FAKE_AT_MOST},
                   "faces reals called fake": rules.PHOTO_CALLED_FAKE_AT_MOST}
    assert rules.photo_decision(at_the_edge)["gives verdicts"]
