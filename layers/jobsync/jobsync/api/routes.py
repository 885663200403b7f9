"""Every HTTP route of the contract, once.

The handlers, the OpenAPI document and the template test all read this
table, so none of them can drift from the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from jobsync.api import models


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # folder under functions/
    summary: str
    response: type[BaseModel] | None
    authenticated: bool = True
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


HEALTH = Route("GET", "/api/health", "health", "Liveness check", models.HealthOut, authenticated=False)
LIST_JOBS = Route(
    "GET",
    "/api/cloud/jobs",
    "list_jobs",
    "List jobs newest first, optionally refreshing active ones",
    models.JobListOut,
    query=models.ListJobsQuery,
    errors=(400, 502),
)
GET_JOB = Route(
    "GET",
    "/api/cloud/jobs/{job_id}",
    "get_job",
    "One job",
    models.JobDetailOut,
    path_params=models.JobPath,
    errors=(404,),
)
INLINE_PROGRESS = Route(
    "GET",
    "/api/cloud/jobs/{job_id}/inline-progress",
    "inline_progress",
    "Stage, last log line and progress of a running job",
    models.InlineProgressOut,
    path_params=models.JobPath,
    errors=(404,),
)
SYNC_JOBS = Route(
    "POST",
    "/api/cloud/jobs/sync",
    "sync_jobs",
    "Discover the provider's jobs and update known ones",
    models.SyncOut,
    errors=(502,),
)
VALIDATE_PROVIDER = Route(
    "GET",
    "/api/cloud/replicate/validate",
    "validate_provider",
    "Check the Replicate credentials",
    models.ValidateOut,
)
METRICS = Route("GET", "/api/cloud/metrics", "metrics", "Job counts and total cost", models.MetricsOut)
SERVICE_CONFIG = Route(
    "GET",
    "/api/cloud/config",
    "service_config",
    "WebSocket URL, polling and webhook configuration",
    models.ConfigOut,
)
POLLING_STATUS = Route(
    "GET",
    "/api/cloud/polling/status",
    "polling_status",
    "Whether background polling is on",
    models.PollingStatusOut,
)
POLLING_SETTING = Route(
    "PUT",
    "/api/cloud/polling/setting",
    "polling_setting",
    "Force polling on or off, or back to automatic",
    models.PollingStatusOut,
    body=models.PollingSettingBody,
    errors=(400,),
)
REPLICATE_WEBHOOK = Route(
    "POST",
    "/api/webhooks/replicate",
    "replicate_webhook",
    "Replicate's signed webhook",
    models.WebhookOut,
    authenticated=False,
    errors=(400, 401),
)
OPENAPI = Route("GET", "/api/openapi.json", "openapi", "This API's OpenAPI document", None)

ROUTES: tuple[Route, ...] = (
    HEALTH,
    LIST_JOBS,
    GET_JOB,
    INLINE_PROGRESS,
    SYNC_JOBS,
    VALIDATE_PROVIDER,
    METRICS,
    SERVICE_CONFIG,
    POLLING_STATUS,
    POLLING_SETTING,
    REPLICATE_WEBHOOK,
    OPENAPI,
)

# Not part of the API: API Gateway sends here whatever no route above serves,
# so that even an unknown path is answered in the contract's error shape.
NOT_FOUND = Route(
    "ANY", "/{proxy+}", "not_found", "Anything no other route serves", None, authenticated=False, errors=(404,)
)

DEPLOYED_ROUTES: tuple[Route, ...] = (*ROUTES, NOT_FOUND)
