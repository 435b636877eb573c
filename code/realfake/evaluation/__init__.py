"""The evaluation layer: scoring a model on datasets and image files, robustness to perturbations, the shortcut
audit and explanations. Imports training, models, data, classes.py and the base.
"""
