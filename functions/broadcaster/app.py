"""DynamoDB stream of the jobs table → `job_status_changed` to every WebSocket client."""

from jobsync.observability import logger, metrics
from jobsync.services.broadcast import broadcast, status_changes


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    report = broadcast(status_changes(event.get("Records", [])))
    return {"changes": report.changes, "sent": report.sent, "gone": report.gone, "failed": report.failed}
