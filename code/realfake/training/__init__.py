"""The training layer: recipes, the loop with its calibration, what a run trains on (pools, fake makers, own
generators), the backbone's fits, distributed training. Imports models, data, classes.py and the base.
"""
