"""Invoked asynchronously (jobsync.background.hand_off) with `{"job_ids": [...], "handed_off_at": <epoch
seconds>}`: keep those ended jobs' final log tails. The list of what is pending lives in DynamoDB; this
event is only a nudge."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.domain import identifiers
from jobsync.observability import logger, metrics
from jobsync.services.final_logs import keep_final_tails


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job_ids = [job_id for job_id in event.get("job_ids") or [] if identifiers.is_job_id(job_id)]
    handed_off_at = event.get("handed_off_at")
    if isinstance(handed_off_at, bool) or not isinstance(handed_off_at, (int, float)):
        handed_off_at = None  # a hand-off made before the time was sent: the poller's tick tidies up
    with invocation_deadline(context):
        report = keep_final_tails(job_ids, handed_off_at=handed_off_at)
    return {name: len(value) for name, value in report.__dict__.items()}
