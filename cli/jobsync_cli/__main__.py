"""`python -m jobsync_cli` is the `jobsync` command."""

from jobsync_cli.app import main

main()
