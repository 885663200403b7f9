"""GET /api/cloud/polling/status"""

from jobsync.api.http import Request, http_handler
from jobsync.api.routes import POLLING_STATUS
from jobsync.services.polling import polling_state


@http_handler(POLLING_STATUS)
def lambda_handler(request: Request) -> dict:
    state = polling_state()
    return {"is_active": state.is_active, "preference": state.preference}
