"""`python -m local.replicate_simulator`: see `cli.py`."""

from local.replicate_simulator.cli import main

main()
