"""`python -m textcls ...`, also what `torchrun -m textcls train ...` runs on each process."""

from textcls.cli.main import main

main()
