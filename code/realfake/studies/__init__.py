"""The studies: transfer variants and the leave-one-generator-out benchmark, the transfer matrix, the zero-shot
detector, the seed study. Imports evaluation and every layer below it.
"""
