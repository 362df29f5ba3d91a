"""ranker: rank the daily arXiv flood with local models.

Library first; the `ranker` command is a thin layer over these functions.
"""
__version__ = "0.1.0"
