"""rules.py: the rules' decisions follow from the figures they are given."""
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
