"""The models layer: the networks (StrongCNN, PatchCNN, the own generators' networks), the pretrained backbone and
its feature cache, checkpoints, and running a model over images. Imports data, classes.py and the base.
"""
