"""python -m ketaweight.cli: the same as the ketaweight command."""

from ketaweight.cli import main

main()
