"""Replicate behind the provider interface: the HTTP client, on a synchronous httpx client.

Only this module knows Replicate's URLs and error format (the object shape is
`replicate_mapping`'s). It turns every failure into a `ProviderError`
subclass (`ProviderNotFound` only for a real 404 answer), retries only
idempotent requests within the invocation's deadline — throttling, 5xx,
timeouts, dropped connections and bodies cut short alike — honours
`Retry-After`, and never lets the API token leave for another host or show up
in a log line, an exception or a repr.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote

import httpx

from jobsync.config import Settings
from jobsync.deadline import seconds_left
from jobsync.domain.identifiers import is_job_id
from jobsync.domain.job import JobObservation
from jobsync.observability import logger, milliseconds
from jobsync.providers.base import (
    JOB_KINDS,
    Account,
    JobPage,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnavailable,
)
from jobsync.providers.replicate_mapping import PROVIDER, observation_from, storable, storable_string

USER_AGENT = f"jobsync/0.1.0 httpx/{httpx.__version__}"

_COLLECTIONS = {"prediction": "predictions", "training": "trainings"}
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF_BASE_SECONDS = 0.1
_BACKOFF_CAP_SECONDS = 5.0
_MAX_MESSAGE_CHARS = 300
# A request given less time than this would only time out.
_MIN_REQUEST_SECONDS = 1.0
_THROTTLE_WAIT = re.compile(r"~\s*(\d+(?:\.\d+)?)\s*s\b")

Sleep = Callable[[float], Any]
_T = TypeVar("_T")
# Where the client reads its API token, once per request: a token rotated at its source reaches a warm client.
TokenSource = Callable[[], str | None]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at each wait, so a test that replaces time.sleep is heard


def _token_in(settings: Settings) -> TokenSource:
    configured = settings.replicate_api_token
    token = configured.get_secret_value() if configured is not None else None
    return lambda: token


def _collection(kind: str | None, *, default: str | None = None) -> str:
    collection = default if kind is None else _COLLECTIONS.get(kind)
    if collection is None:
        raise ProviderError(f"unknown job kind {kind!r}; expected one of {JOB_KINDS}")
    return collection


def _parse_base(url: str) -> httpx.URL | None:
    try:
        base = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    if base.scheme not in ("http", "https") or not base.host or base.userinfo or base.query or base.fragment:
        return None
    return base


# Whatever the provider says, a wait is reported as at most a day.
_LONGEST_WAIT_SECONDS = 86_400.0


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds Replicate asks us to wait: `Retry-After` first, then `~Ns` in the detail."""
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            seconds = float(header)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = math.nan
        if math.isfinite(seconds):
            return min(max(0.0, seconds), _LONGEST_WAIT_SECONDS)
    detail = _problem(response).get("detail")
    if isinstance(detail, str):
        match = _THROTTLE_WAIT.search(detail)
        if match:
            seconds = float(match.group(1))
            return min(seconds, _LONGEST_WAIT_SECONDS) if math.isfinite(seconds) else _LONGEST_WAIT_SECONDS
    return None


def _problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json body of an error answer, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ReplicateClient:
    """Replicate's predictions and trainings as jobsync's ProviderClient."""

    name = PROVIDER
    display_name = "Replicate"

    def __init__(
        self,
        settings: Settings,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        """`token` defaults to `settings.replicate_api_token`; it may raise ProviderAuthError when unreadable."""
        self._settings = settings
        self._token = token if token is not None else _token_in(settings)
        self._sleep = sleep if sleep is not None else _sleep
        self._base = _parse_base(settings.replicate_api_base_url)
        self._max_retries = settings.provider_max_retries
        self._max_wait = settings.provider_max_retry_wait_seconds
        self._timeout = settings.provider_timeout_seconds
        self._webhook_secret: str | None = None
        self._transport = transport
        self._http_client: httpx.Client | None = None
        self._http_lock = threading.Lock()

    @property
    def _http(self) -> httpx.Client:
        """The HTTP client, built at the first request: building it loads the CA bundle into an SSL context
        (about 50 ms of CPU), which a cold start that never calls Replicate (a webhook is only parsed) need
        not pay. One client however many threads ask at once."""
        if self._http_client is None:
            with self._http_lock:
                if self._http_client is None:
                    self._http_client = httpx.Client(
                        # The token is sent per request, never kept in the client's headers.
                        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                        timeout=httpx.Timeout(self._settings.provider_timeout_seconds),
                        transport=self._transport,
                        # A redirect could carry the token elsewhere; Replicate's API does not redirect.
                        follow_redirects=False,
                    )
        return self._http_client

    def __repr__(self) -> str:
        return f"ReplicateClient(base_url={self._settings.replicate_api_base_url!r})"

    def close(self) -> None:
        if self._http_client is not None:
            self._http_client.close()

    def __enter__(self) -> ReplicateClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the interface

    def list_page(self, kind: str, page: str | None = None) -> JobPage:
        collection = _collection(kind)
        url = self._url(collection) if page is None else self._trusted_next(page, collection)
        body = self._request("GET", url, _json_object)
        results = body.get("results")
        if not isinstance(results, list):
            raise ProviderError(f"Replicate's {collection} list has no results list")
        jobs = []
        for index, item in enumerate(results):
            try:
                jobs.append(observation_from(item, kind))
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                logger.warning(
                    "skipping an unreadable job in a Replicate list",
                    extra={"provider": PROVIDER, "collection": collection, "index": index, "reason": str(exc)},
                )
        next_page = body.get("next")
        if next_page is not None and not isinstance(next_page, str):
            logger.warning("ignoring a non-string next page from Replicate", extra={"provider": PROVIDER})
            next_page = None
        return JobPage(jobs=jobs, next_page=next_page or None)

    def get_job(self, job_id: str, kind: str | None = None) -> JobObservation:
        collection = _collection(kind, default="predictions")
        body = self._request("GET", self._url(collection, self._job_segment(job_id)), _json_object)
        try:
            return observation_from(body, kind)
        except ValueError as exc:
            raise ProviderError(f"Replicate answered with an unreadable job: {exc}") from None

    def account(self) -> Account:
        body = self._request("GET", self._url("account"), _json_object)
        return Account(username=storable_string(body.get("username")))

    def webhook_secret(self) -> str:
        configured = self._settings.replicate_webhook_secret
        if configured is not None and configured.get_secret_value():
            return configured.get_secret_value()
        if self._webhook_secret is None:
            body = self._request("GET", self._url("webhooks", "default", "secret"), _json_object)
            key = body.get("key")
            if not isinstance(key, str) or not key:
                raise ProviderError("Replicate's webhook secret answer has no key")
            self._webhook_secret = key
        return self._webhook_secret

    def observation_from_webhook(self, payload: object) -> JobObservation:
        # A webhook body is the prediction or training object itself; its kind is read from its own URL.
        return observation_from(payload, None)

    def cancel(self, job_id: str, kind: str | None = None) -> JobObservation | None:
        """Ask Replicate to cancel a job; never retried (a POST may already have landed).

        Returns the job as Replicate describes it after the request, or None
        when the answer does not describe it.
        """
        collection = _collection(kind, default="predictions")
        url = self._url(collection, self._job_segment(job_id), "cancel")
        response = self._request("POST", url, _any_body)
        try:
            return observation_from(response.json(), kind)
        except ValueError:
            return None

    # ------------------------------------------------------------------ URLs

    def _base_url(self) -> httpx.URL:
        if self._base is None:
            raise ProviderError("REPLICATE_API_BASE_URL is not a usable http(s) URL")
        return self._base

    def _url(self, *segments: str) -> httpx.URL:
        base = self._base_url()
        return base.copy_with(path=base.path.rstrip("/") + "/" + "/".join(segments))

    @staticmethod
    def _job_segment(job_id: str) -> str:
        # The domain's job id never holds a separator, a dot segment or an escape.
        if not is_job_id(job_id):
            raise ProviderNotFound(f"Replicate has no job with an id like {job_id!r:.80}", status=404)
        return quote(job_id, safe="")

    def _trusted_next(self, page: str, collection: str) -> httpx.URL:
        """`page` as a URL, only when it points into our own API's `collection` list.

        The client sends the token with every request, so a `next` that leads
        anywhere else (another host, port, scheme or path) is refused.
        """
        base = self._base_url()
        try:
            url = httpx.URL(page)
        except (httpx.InvalidURL, TypeError):
            raise ProviderError("Replicate's next page is not a URL") from None
        prefix = base.path.rstrip("/") + "/" + collection
        path = unquote(url.path)
        segments = path.split("/")
        same_origin = (
            url.scheme == base.scheme
            and (url.host or "").lower() == (base.host or "").lower()
            and url.port == base.port
            and not url.userinfo
        )
        inside = (path == prefix or path.startswith(prefix + "/")) and not {".", ".."} & set(segments)
        if not (same_origin and inside):
            raise ProviderError("refusing to follow a next page outside the configured Replicate API")
        return url

    # ------------------------------------------------------------------ HTTP

    def _backoff(self, attempt: int) -> float:
        ceiling: float = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _request(self, method: str, url: httpx.URL, read: Callable[[httpx.Response], _T]) -> _T:
        """Send one request and `read` its 2xx answer, retrying a GET that meets a provider fault.

        Throttling, 5xx, a dropped or timed-out connection and a body cut short
        (`read` raising _Unreadable) are retried within the invocation's time;
        every other outcome, and the last fault once retries are spent, is
        raised as a ProviderError.
        """
        token = self._token()
        if not token:
            raise ProviderAuthError("REPLICATE_API_TOKEN is not set")
        headers = {"Authorization": f"Bearer {token}"}
        retries_left = self._max_retries if method == "GET" else 0
        attempt = 0
        while True:
            try:
                return self._attempt(method, url, headers, token, read)
            except _Fault as fault:
                if retries_left <= 0:
                    raise fault.error from fault.error.__cause__
                wait = self._backoff(attempt) if fault.wait is None else fault.wait
            logger.info(
                "retrying a Replicate request",
                extra={
                    "provider": PROVIDER,
                    "method": method,
                    "path": url.path,
                    "attempt": attempt + 1,
                    "wait": round(wait, 3),
                },
            )
            left = seconds_left()
            if left is not None and wait + _MIN_REQUEST_SECONDS > left:
                where = f"Replicate {method} {url.path}"
                raise ProviderUnavailable(f"{where} kept failing and the invocation is out of time")
            self._sleep(wait)
            retries_left -= 1
            attempt += 1

    def _attempt(
        self, method: str, url: httpx.URL, headers: dict[str, str], token: str, read: Callable[[httpx.Response], _T]
    ) -> _T:
        """One request: its answer read, or a _Fault worth retrying, or any other ProviderError."""
        where = f"Replicate {method} {url.path}"
        started = time.perf_counter()
        timeout = self._time_for_one_request(method, url)
        try:
            response = self._http.request(method, url, headers=headers, timeout=timeout)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # Timeouts, refused or reset connections, an answer cut short on the wire or in its encoding.
            self._log_call(method, url, None, started)
            error = ProviderUnavailable(f"{where} failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            raise _Fault(error) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"{where} failed: {type(exc).__name__}") from exc
        self._log_call(method, url, response.status_code, started)
        status = response.status_code
        if status == 429:
            asked = _retry_after(response)
            if asked is not None and asked > self._max_wait:
                message = f"Replicate throttled us for {asked:g}s, longer than we wait"
                raise ProviderRateLimited(message, retry_after=asked)
            raise _Fault(ProviderRateLimited("Replicate kept throttling us", retry_after=asked), wait=asked)
        if status in _RETRYABLE_STATUSES:
            raise _Fault(self._error(method, url, response, token))
        try:
            return read(self._checked(method, url, response, token))
        except _Unreadable as exc:
            # A 2xx whose body is cut short (or is no JSON at all): the provider's fault, like a dropped connection.
            raise _Fault(ProviderUnavailable(f"{where}: {exc}", status=status)) from None

    def _time_for_one_request(self, method: str, url: httpx.URL) -> float:
        """The request timeout, shortened to what the invocation has left (a late answer is no answer)."""
        left = seconds_left()
        if left is None:
            return self._timeout
        if left < _MIN_REQUEST_SECONDS:
            raise ProviderUnavailable(f"no time left in this invocation for Replicate {method} {url.path}")
        # httpx applies a timeout to connecting, sending and each read apiece: a third each fits in what is left.
        return min(self._timeout, left / 3)

    def _log_call(self, method: str, url: httpx.URL, status: int | None, started: float) -> None:
        milliseconds("ProviderLatency", (time.perf_counter() - started) * 1000)
        logger.debug(
            "provider call",
            extra={
                "provider": PROVIDER,
                "method": method,
                "path": url.path,
                "status": status,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    def _checked(self, method: str, url: httpx.URL, response: httpx.Response, token: str) -> httpx.Response:
        if 200 <= response.status_code < 300:
            return response
        raise self._error(method, url, response, token)

    def _error(self, method: str, url: httpx.URL, response: httpx.Response, token: str) -> ProviderError:
        """What a non-2xx answer means, as the ProviderError to raise."""
        status = response.status_code
        problem = _problem(response)
        detail = problem.get("detail") or problem.get("title")
        detail = _scrub(detail, token) if isinstance(detail, str) and detail.strip() else None
        where = f"Replicate {method} {url.path}"
        if status in (401, 403):
            return ProviderAuthError(detail or f"{where}: credentials refused (HTTP {status})", status=status)
        if status == 404:
            return ProviderNotFound(f"{where}: {detail or 'not found'}", status=status)
        if status == 429:
            return ProviderRateLimited(f"{where}: {detail or 'throttled'}", retry_after=_retry_after(response))
        reason = detail or response.reason_phrase or "unexpected answer"
        if status >= 500:
            return ProviderUnavailable(f"{where}: HTTP {status}: {reason}", status=status)
        return ProviderError(f"{where}: HTTP {status}: {reason}", status=status)


class _Unreadable(Exception):
    """A 2xx answer whose body cannot be read (cut short, or not JSON): worth asking again."""


class _Fault(Exception):
    """A provider fault worth retrying: `error` is raised once retries are spent; `wait` is the provider's ask."""

    def __init__(self, error: ProviderError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.wait = wait


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object. A body that does not parse is _Unreadable (retried); one that parses to
    something else than an object is a plain ProviderError (asking again would give the same)."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        raise _Unreadable("the answer's body is not complete JSON (cut short?)") from None
    if not isinstance(body, dict):
        raise ProviderError(
            f"Replicate answered {response.request.url.path} with JSON that is not an object",
            status=response.status_code,
        )
    return body


def _any_body(response: httpx.Response) -> httpx.Response:
    return response


def _scrub(text: str, token: str) -> str:
    """Provider text made safe to surface: short, storable, and never holding our token."""
    text = storable(text.replace(token, "[redacted]"))
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 3] + "..."
