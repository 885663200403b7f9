"""Scheduled by EventBridge Scheduler: refresh every active job, several ticks per invocation.

Lambda records each invocation in X-Ray (`Tracing: Active` in template.yaml).
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobsync.deadline import invocation_deadline
from jobsync.observability import logger, metrics
from jobsync.services.polling import run_scheduled_ticks, scheduled_time


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    with invocation_deadline(context):
        reports = run_scheduled_ticks(context.get_remaining_time_in_millis, scheduled_at=scheduled_time(event))
    return {
        "ticks": len(reports),
        "polled": sum(report.polled for report in reports),
        "updated": sum(refresh.updated for report in reports for refresh in report.refreshes),
        "failed": sum(report.error is not None for report in reports),
    }
