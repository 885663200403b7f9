"""`make bench`: jobsync's scaling figures, each measured beside a per-job baseline (`python -m bench`)."""
