"""Publishing: the reproduction report's sections and figures, the README's tables and the model card, all
from results files. Imports studies and every layer below it.
"""
