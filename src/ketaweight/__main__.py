"""python -m ketaweight: the same as the ketaweight command."""

from ketaweight.cli import main

main()
