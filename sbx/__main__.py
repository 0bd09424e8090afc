"""`python -m sbx` runs the CLI (same as the `sbx` console script)."""

from sbx.cli import main

main()
