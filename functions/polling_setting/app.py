"""PUT /api/cloud/polling/setting — force polling on/off, or null for automatic."""

from dataclasses import asdict
from typing import Any

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import POLLING_SETTING
from jobsync.services.polling_preference import set_polling_preference


@http_handler(POLLING_SETTING)
def lambda_handler(request: Request) -> dict[str, Any]:
    return asdict(set_polling_preference(request.body.enabled))
