"""Errors the domain and services raise; the API layer turns them into answers."""


class JobsyncError(Exception):
    code = "internal_error"
    http_status = 500


class InvalidInput(JobsyncError):
    code = "invalid_input"
    http_status = 400


class JobNotFound(JobsyncError):
    code = "job_not_found"
    http_status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class JobAlreadyEnded(JobsyncError):
    """An operation on an active job (cancel) asked of one that has ended."""

    code = "job_already_ended"
    http_status = 409

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id!r} has already ended ({status}); there is nothing to cancel")
        self.job_id = job_id


class JobUnknownToProvider(JobsyncError):
    """The provider answered 404 for a job jobsync knows: there is nothing there to act on."""

    code = "job_unknown_to_provider"
    http_status = 409

    def __init__(self, job_id: str, provider: str) -> None:
        super().__init__(
            f"{provider} does not know job {job_id!r} (it answered 404), so there is nothing to cancel there; "
            "jobsync ends the job once the provider has kept answering 404 for 15 minutes"
        )
        self.job_id = job_id


class RouteNotFound(JobsyncError):
    code = "not_found"
    http_status = 404


class Unauthorized(JobsyncError):
    code = "unauthorized"
    http_status = 401


class StoreUnavailable(JobsyncError):
    code = "store_unavailable"
    http_status = 503


class Forbidden(JobsyncError):
    """A valid token whose scope is too small for what it asked."""

    code = "forbidden"
    http_status = 403


class TokenNotFound(JobsyncError):
    code = "token_not_found"
    http_status = 404
