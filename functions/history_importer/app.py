"""Invoked asynchronously (jobsync.background.hand_off) by a sync, by the poller's tick and by itself:
imports the next pages of a provider's history until close to its deadline, then hands off its successor.

Event: {"provider": "replicate", "lease": "<token the starter took the lease with>"}.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.observability import logger, metrics
from jobsync.providers.registry import PROVIDERS
from jobsync.services.history_import import run_import


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    provider, lease = event.get("provider"), event.get("lease")
    if provider not in PROVIDERS or not (lease is None or isinstance(lease, str)):
        # A retry would not make it valid: dropped, and said so.
        logger.error("history import event refused", extra={"event_keys": sorted(event)})
        return {"ran": False, "error": "the event names no known provider and lease"}
    with invocation_deadline(context):
        run = run_import(provider, lease)
    return {
        "ran": run.ran,
        "pages": run.pages,
        "created": run.created,
        "imported": run.imported,
        "done": run.done,
        "handed_off": run.handed_off,
    }
