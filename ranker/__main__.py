"""`python -m ranker ...`: the same as the `ranker` command."""
from .cli import main

main()
