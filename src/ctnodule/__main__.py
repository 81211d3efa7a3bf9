"""`python -m ctnodule` runs the CLI."""

from ctnodule.cli import main

main()
