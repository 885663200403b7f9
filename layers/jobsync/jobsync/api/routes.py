"""Every HTTP route of the contract, once, with the token scope it needs.

The handlers, the OpenAPI document and the template test all read this
table, so none of them can drift from the others. A route whose scope is
None is open to anyone; every other route answers 401 without a valid token
and 403 to a valid token whose scope is smaller than the route's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from jobsync.api import models, token_models
from jobsync.auth import Scope


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # folder under functions/
    summary: str
    response: type[BaseModel] | None
    scope: Scope | None = Scope.READ
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def authenticated(self) -> bool:
        return self.scope is not None


HEALTH = Route("GET", "/api/health", "health", "Liveness check", models.HealthOut, scope=None)
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
JOB_LOGS = Route(
    "GET",
    "/api/cloud/jobs/{job_id}/logs",
    "job_logs",
    "A job's log lines, newest last: read through the shared 5 s claim while it runs, kept after it ends",
    models.JobLogsOut,
    path_params=models.JobPath,
    query=models.JobLogsQuery,
    errors=(400, 404),
)
CANCEL_JOB = Route(
    "POST",
    "/api/cloud/jobs/{job_id}/cancel",
    "cancel_job",
    "Ask the provider to cancel a job (sent once, never retried; an ended job answers 409)",
    models.JobDetailOut,
    scope=Scope.OPERATE,
    path_params=models.JobPath,
    errors=(404, 409, 502),
)
SYNC_JOBS = Route(
    "POST",
    "/api/cloud/jobs/sync",
    "sync_jobs",
    "Discover the provider's jobs and update known ones",
    models.SyncOut,
    scope=Scope.OPERATE,
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
    scope=Scope.OPERATE,
    body=models.PollingSettingBody,
    errors=(400,),
)
REPLICATE_WEBHOOK = Route(
    "POST",
    "/api/webhooks/replicate",
    "replicate_webhook",
    "Replicate's signed webhook",
    models.WebhookOut,
    scope=None,
    # 403: it did not come through CloudFront (services/origin_verify.py); 502: the signing secret is read
    # from the provider when not configured.
    errors=(400, 401, 403, 502),
)
OPENAPI = Route("GET", "/api/openapi.json", "openapi", "This API's OpenAPI document", None)
CREATE_TOKEN = Route(
    "POST",
    "/api/tokens",
    "create_token",
    "Issue an API token (its plaintext is in this answer only)",
    token_models.TokenCreatedOut,
    scope=Scope.ADMIN,
    body=token_models.TokenCreateBody,
    errors=(400,),
)
LIST_TOKENS = Route(
    "GET", "/api/tokens", "list_tokens", "Every API token's metadata", token_models.TokenListOut, scope=Scope.ADMIN
)
REVOKE_TOKEN = Route(
    "DELETE",
    "/api/tokens/{token_id}",
    "revoke_token",
    "Revoke an API token (refused everywhere within 60 s)",
    token_models.TokenRevokedOut,
    scope=Scope.ADMIN,
    path_params=token_models.TokenPath,
    errors=(404,),
)

ROUTES: tuple[Route, ...] = (
    HEALTH,
    LIST_JOBS,
    GET_JOB,
    INLINE_PROGRESS,
    JOB_LOGS,
    CANCEL_JOB,
    SYNC_JOBS,
    VALIDATE_PROVIDER,
    METRICS,
    SERVICE_CONFIG,
    POLLING_STATUS,
    POLLING_SETTING,
    REPLICATE_WEBHOOK,
    OPENAPI,
    CREATE_TOKEN,
    LIST_TOKENS,
    REVOKE_TOKEN,
)

# The WebSocket's $connect (`?token=`) needs this scope.
WEBSOCKET_SCOPE = Scope.READ

# Not part of the API: API Gateway sends here whatever no route above serves,
# so that even an unknown path is answered in the contract's error shape.
NOT_FOUND = Route("ANY", "/{proxy+}", "not_found", "Anything no other route serves", None, scope=None, errors=(404,))

DEPLOYED_ROUTES: tuple[Route, ...] = (*ROUTES, NOT_FOUND)
