"""Every rule that decides what ships or what predict.py uses, each written before the data it judges was scored.

    FULL_SIZE_ABOVE            images over this short side go to the full-size model
    FALLBACK_MODEL             predict.py's model when the model card names no default
    DEFAULT_MODEL_RULE         which shipped model predict.py uses (`default_model`)
    CIFAKE_SHIPPING_RULE       whether pretrained_model (CIFAKE on the backbone) ships
    FULL_SIZE_SHIPPING_RULE    whether agiri_model (the full-size detector) ships
    PHOTO_RULE                 whether a full-size model gives verdicts on a user's photographs (`photo_decision`)
    VARIANT_SHIPPING_RULE      whether a transfer variant replaces strong_model (`variant_shipping_decision`)
    GENERAL_RULE               whether a benchmark recipe counts as generalising (`general_decision`)
    NO_OUTSIDE_RULE            whether training without outside fakes helps (`no_outside_decision`)
"""

# ----------------------------------------------------------------------------------------------
# What predict.py uses

FULL_SIZE_ABOVE = 64                # short side (px) above which predict.py gives an image to the full-size model
FALLBACK_MODEL = "strong_model"     # the most accurate on CIFAKE, when the card names no default
DEFAULT_LEAST_CIFAKE_AUROC = 0.98
DEFAULT_MODEL_RULE = (f"predict.py scores with the shipped model that, among those with CIFAKE test AUROC at least "
                      f"{DEFAULT_LEAST_CIFAKE_AUROC} (competent on the generator they were trained for), has the "
                      f"highest worst AUROC over the development generators (against CIFAKE's test reals): a user's "
                      f"images may come from any generator, so the model to trust is the one whose weakest case is "
                      f"least weak.")


def default_model(results):
    """The shipped model DEFAULT_MODEL_RULE picks from results.json's "generators" rows (None without them, or when no
    model is competent on CIFAKE)."""
    rows = results.get("generators", {}).get("rows", {})
    cases = {name: {g: row[f"{g} AUROC"] for g in results["generators"]["development"]}
             for name, row in rows.items()
             if row["protocol"].endswith("(shipped)") and row["CIFAKE test AUROC"] >= DEFAULT_LEAST_CIFAKE_AUROC}
    if not cases:
        return None
    best = max(cases, key=lambda name: min(cases[name].values()))
    worst = min(cases[best], key=cases[best].get)
    return {"model": best, "worst-case AUROC": cases[best][worst], "worst on": worst, "rule": DEFAULT_MODEL_RULE}


# ----------------------------------------------------------------------------------------------
# What ships

CIFAKE_GOAL = 0.99                  # CIFAKE test accuracy pretrained_model aims at (the rule below decides shipping)
CIFAKE_SHIPPING_RULE = ("pretrained_model ships (joins the model card) only if its validation AUROC beats "
                        f"strong_model's on the same validation split; the goal is {CIFAKE_GOAL:.1%} accuracy on "
                        "CIFAKE's test split. Written before the test split was scored.")

FULL_SIZE_SHIP_AT_LEAST, FULL_SIZE_GOAL = 0.95, 0.98    # agiri_model's held-out AUROC, JPEG fakes alone: floor, goal
FULL_SIZE_SHIPPING_RULE = (f"agiri_model ships (predict.py scores images over {FULL_SIZE_ABOVE} px with it) if its "
                           f"held-out AUROC on the JPEG fakes alone against the reals is at least "
                           f"{FULL_SIZE_SHIP_AT_LEAST}; the goal is {FULL_SIZE_GOAL}. Written before the held-out fold "
                           f"was scored.")

# A false accusation costs more than a miss: photo_model's operating point calls at most PHOTO_VALIDATION_CALLED_FAKE
# of the validation reals fake (each source weighted equally), and calls an image real only where at most
# PHOTO_FAKES_CALLED_REAL of the validation fakes score as high; between the two it is uncertain.
PHOTO_VALIDATION_CALLED_FAKE, PHOTO_FAKES_CALLED_REAL = 0.05, 0.10
PHOTO_AUROC_AT_LEAST, PHOTO_CALLED_FAKE_AT_MOST = 0.90, 0.15
PHOTO_GOAL = {"called fake at most": 0.05, "called real at least": 0.80, "AUROC at least": 0.95}
PHOTO_RULE = (f"A full-size model gives verdicts (predict.py calls a full-size image fake or real with it) only if "
              f"(a) its AUROC on AGIRI's held-out fold, JPEG fakes against reals, is at least {PHOTO_AUROC_AT_LEAST}; "
              f"(b) every real source left out of its training has at most {PHOTO_CALLED_FAKE_AT_MOST:.0%} called "
              f"fake; (c) at most {PHOTO_CALLED_FAKE_AT_MOST:.0%} of the faces set's CelebA-HQ reals (never trained "
              f"on) are called fake. Goal: at most {PHOTO_GOAL['called fake at most']:.0%} called fake on every "
              f"source, at least {PHOTO_GOAL['called real at least']:.0%} called real, AUROC at least "
              f"{PHOTO_GOAL['AUROC at least']}. Otherwise predict.py gives P(real) with the verdict uncertain. Written "
              f"before any held-out score of photo_model; agiri_model is judged by it on the same folds.")


def photo_decision(figures):
    """PHOTO_RULE on a model's figures: {"AGIRI held-out AUROC, JPEG fakes", "left-out sources called fake":
    {source: share}, "faces reals called fake" (None: not measured, which fails (c)), "called real": {source: share}}.
    Returns {"gives verdicts", each check, "goal met"}."""
    auroc, left_out, faces = (figures["AGIRI held-out AUROC, JPEG fakes"], figures["left-out sources called fake"],
                              figures["faces reals called fake"])
    checks = {"(a) AUROC": auroc >= PHOTO_AUROC_AT_LEAST,
              "(b) left-out sources": bool(left_out) and max(left_out.values()) <= PHOTO_CALLED_FAKE_AT_MOST,
              "(c) faces reals": faces is not None and faces <= PHOTO_CALLED_FAKE_AT_MOST}
    called_fake = [*left_out.values(), *([faces] if faces is not None else [])]
    goal = (auroc >= PHOTO_GOAL["AUROC at least"] and max(called_fake) <= PHOTO_GOAL["called fake at most"]
            and min(figures["called real"].values()) >= PHOTO_GOAL["called real at least"])
    return {"gives verdicts": all(checks.values()), "checks": checks, "goal met": bool(goal)}


# The rule for shipping a general model, set before the study: the CIFAKE-only variant with the best mean AUROC over
# the development generators, among those that beat strong_model's mean by LEAST_GAIN and keep CIFAKE test AUROC.
VARIANT_SHIPPING_RULE = {"against": "strong_model", "least gain": 0.05, "least CIFAKE AUROC": 0.98}


def variant_shipping_decision(rows, rule=VARIANT_SHIPPING_RULE):
    """Which CIFAKE-only variant, if any, the rule ships: {"rule", "chosen" (a name or None), "variants": each
    variant's gain over the reference and whether it qualifies}."""
    reference = rows[rule["against"]]["mean development AUROC"]
    verdicts = {}
    for name, row in rows.items():
        if row["protocol"] == "CIFAKE only":
            gain = row["mean development AUROC"] - reference
            verdicts[name] = {"gain": gain, "CIFAKE test AUROC": row["CIFAKE test AUROC"],
                              "qualifies": gain >= rule["least gain"] and
                              row["CIFAKE test AUROC"] >= rule["least CIFAKE AUROC"]}
    qualifying = [name for name, verdict in verdicts.items() if verdict["qualifies"]]
    chosen = max(qualifying, key=lambda name: rows[name]["mean development AUROC"]) if qualifying else None
    return {"rule": rule, "chosen": chosen, "variants": verdicts}


# The rule for shipping general_model (trained on CIFAKE and every development generator), set before the benchmark
# ran: its recipe's leave-one-generator-out mean must beat strong_model's mean on the same generators by LEAST_GAIN,
# at CIFAKE test AUROC no lower than the floor below.
GENERAL_RULE = {"against": "strong_model (shipped)", "recipe": "logo: fast balanced", "least gain": 0.10,
                "least CIFAKE AUROC": 0.98, "goal": 0.75}


def general_decision(rows, rule=GENERAL_RULE):
    """Whether general_model ships, from the benchmark rows: {"rule", "ships", "gain", "CIFAKE test AUROC",
    "leave-one-out mean", and each logo row's gain}."""
    reference = rows[rule["against"]]["mean AUROC"]
    gains = {name: row["mean AUROC"] - reference for name, row in rows.items() if row["protocol"] == "logo"}
    if rule["recipe"] not in rows:
        return {"rule": rule, "ships": False, "gains": gains, "why": f"{rule['recipe']} has not been run"}
    row = rows[rule["recipe"]]
    ships = gains[rule["recipe"]] >= rule["least gain"] and row["CIFAKE test AUROC"] >= rule["least CIFAKE AUROC"]
    return {"rule": rule, "ships": bool(ships), "gains": gains, "gain": gains[rule["recipe"]],
            "leave-one-out mean": row["mean AUROC"], "CIFAKE test AUROC": row["CIFAKE test AUROC"]}


# The rule for the two ways that need no outside generator, set before either ran: a row of protocol own (CIFAKE and
# the project's own generators) or zeroshot (no fake seen) ships if its mean over the development generators beats the
# CIFAKE-only floor's by LEAST_GAIN.
NO_OUTSIDE_RULE = {"against": "CIFAKE only (floor)", "protocols": ("own", "zeroshot"), "least gain": 0.05}


def no_outside_decision(rows, rule=NO_OUTSIDE_RULE):
    """{"rule", "gains": each own and zeroshot row's gain over the floor, "ships": the rows that qualify}."""
    if rule["against"] not in rows:
        return {"rule": rule, "gains": {}, "ships": [], "why": "the floor has not been run"}
    reference = rows[rule["against"]]["mean AUROC"]
    gains = {name: row["mean AUROC"] - reference for name, row in rows.items() if row["protocol"] in rule["protocols"]}
    return {"rule": rule, "gains": gains, "ships": sorted(name for name, gain in gains.items()
                                                          if gain >= rule["least gain"])}
