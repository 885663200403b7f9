"""`jobsync`: the command line of a jobsync API (local stack or AWS), over HTTP."""
