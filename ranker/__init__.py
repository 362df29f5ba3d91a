"""ranker: rank the daily arXiv flood with local models.

Library first; the `ranker` command is a thin layer over these functions.
"""
__version__ = "0.1.0"

from pathlib import Path as _Path

# A real day shipped with the package (the demo's input), usable from any folder.
REPO_DAY = _Path(__file__).resolve().parent / "data" / "2025-05-15" / "listing.jsonl"
