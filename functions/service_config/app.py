"""GET /api/cloud/config — what a client needs to know to connect."""

from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import SERVICE_CONFIG
from jobsync.services.overview import client_config


@http_handler(SERVICE_CONFIG)
def lambda_handler(request: Request) -> dict[str, Any]:
    config = client_config()
    return {
        "websocket_url": config.websocket_url,
        "polling": {"enabled": config.polling.is_active, "interval_seconds": config.polling.interval_seconds},
        "webhooks": {"configured": config.webhooks_configured},
    }
