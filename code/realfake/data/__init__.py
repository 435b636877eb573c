"""The data layer: image files to uint8 arrays (with a cache), datasets in memory (ImageSet), what a network sees
of an image, perturbations, duplicates and splits, and the generated sample data. Imports only the base modules.
"""
