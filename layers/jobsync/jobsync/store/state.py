"""Small records in the state table: the polling preference and last tick, webhook receipts, log tails."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jobsync.domain.logs import log_tail
from jobsync.store import dynamo
from jobsync.store.keyed_items import KeyedItems
from jobsync.store.logs import LogStore

POLLING_PREFERENCE_KEY = "settings#polling"
POLL_TICK_KEY = "status#poll-tick"
_RECEIPT_DAYS = 7
_CLAIMED, _APPLIED = "claimed", "applied"
_DAY = 86_400


@dataclass(frozen=True)
class SyncProgress:
    """How far a provider list's history has been imported."""

    history_imported: bool
    # The provider's handle of the next page still to import, while the import is unfinished.
    resume_page: str | None


@dataclass(frozen=True)
class PollTick:
    """A poller tick's outcome: when it started (epoch seconds) and what failed in it (None: nothing)."""

    at: float
    error: str | None


@dataclass(frozen=True)
class LogTail:
    text: str
    fetched_at: float


class StateStore(KeyedItems):
    """Over the state table; its items are read as DynamoDB holds them (`_get`)."""

    def _put(self, item: dict[str, Any]) -> None:
        with dynamo.translated_errors():
            self._table.put_item(Item=dynamo.to_dynamo(item))

    # ---- polling preference ------------------------------------------------

    def polling_preference(self) -> bool | None:
        item = self._get(POLLING_PREFERENCE_KEY) or {}
        enabled = item.get("enabled")
        return enabled if isinstance(enabled, bool) else None

    def set_polling_preference(self, enabled: bool | None) -> None:
        self._put({"pk": POLLING_PREFERENCE_KEY, "enabled": enabled, "updated_at": int(time.time())})

    def last_poll_tick(self) -> PollTick | None:
        item = self._get(POLL_TICK_KEY)
        if not item or "at" not in item:
            return None
        error = item.get("error")
        return PollTick(float(item["at"]), error if isinstance(error, str) else None)

    def save_poll_tick(self, tick: PollTick) -> None:
        self._put({"pk": POLL_TICK_KEY, "at": tick.at, "error": tick.error})

    # ---- sync progress --------------------------------------------------------

    def sync_progress(self, provider: str, kind: str) -> SyncProgress:
        item = self._get(f"sync#{provider}#{kind}") or {}
        return SyncProgress(bool(item.get("history_imported")), item.get("resume_page"))

    def save_sync_progress(self, provider: str, kind: str, *, history_imported: bool, resume_page: str | None) -> None:
        self._put(
            {
                "pk": f"sync#{provider}#{kind}",
                "history_imported": history_imported,
                "resume_page": resume_page,
                "updated_at": int(time.time()),
            }
        )

    # ---- jobs the provider answered 404 for ------------------------------------

    def note_not_found(self, job_id: str, now: float, continuity_seconds: float) -> float:
        """Record a 404 for `job_id`; returns since when it has been missing without a break.

        A 404 more than `continuity_seconds` after the previous one starts a new run.
        """
        item = self._get(f"missing#{job_id}") or {}
        last = float(item.get("last_at", 0))
        since = float(item.get("since", now)) if now - last <= continuity_seconds else now
        self._put({"pk": f"missing#{job_id}", "since": since, "last_at": now, "expires_at": int(now) + _DAY})
        return since

    def clear_not_found(self, job_id: str) -> None:
        """The provider answered for `job_id`: a later 404 starts a new run. Read first, so that a job
        that never answered 404 costs no write."""
        if self._get(f"missing#{job_id}") is not None:
            with dynamo.translated_errors():
                self._table.delete_item(Key={"pk": f"missing#{job_id}"})

    # ---- webhook receipts (de-duplication by webhook-id) -------------------
    #
    # One item per webhook-id: `claimed` while a delivery applies it, `applied` after. The claim is a
    # conditional put, so of any number of concurrent deliveries exactly one applies the webhook.

    def claim_webhook(self, webhook_id: str, claim: str, now: float, stale_after: float) -> bool:
        """True for exactly one delivery of `webhook_id`: the one that may apply it, holding `claim`.

        False when the webhook was applied, or when another delivery claimed it less than
        `stale_after` seconds ago (a claim older than that belongs to an invocation that died).
        """
        try:
            with dynamo.conditional_write():
                self._table.put_item(
                    Item={
                        "pk": f"webhook#{webhook_id}",
                        "state": _CLAIMED,
                        "claim": claim,
                        "claimed_at": dynamo.to_dynamo(now),
                        "expires_at": int(now) + _RECEIPT_DAYS * _DAY,
                    },
                    ConditionExpression="attribute_not_exists(pk) OR (#state = :claimed AND claimed_at <= :stale)",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":claimed": _CLAIMED, ":stale": dynamo.to_dynamo(now - stale_after)},
                )
        except dynamo.ConcurrentUpdate:
            return False
        return True

    def webhook_applied(self, webhook_id: str, claim: str, job_id: str) -> None:
        """Mark a claimed webhook as applied for good (only while `claim` still holds it)."""
        try:
            with dynamo.conditional_write():
                self._table.update_item(
                    Key={"pk": f"webhook#{webhook_id}"},
                    UpdateExpression="SET #state = :applied, job_id = :job_id REMOVE claim",
                    ConditionExpression="claim = :claim",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":applied": _APPLIED, ":job_id": job_id, ":claim": claim},
                )
        except dynamo.ConcurrentUpdate:
            pass  # our claim went stale and another delivery took it over: that one marks it

    def release_webhook(self, webhook_id: str, claim: str) -> None:
        """Give a claimed webhook up (its update failed), so that the provider's retry is applied."""
        try:
            with dynamo.conditional_write():
                self._table.delete_item(
                    Key={"pk": f"webhook#{webhook_id}"},
                    ConditionExpression="claim = :claim",
                    ExpressionAttributeValues={":claim": claim},
                )
        except dynamo.ConcurrentUpdate:
            pass  # no longer ours to release

    def webhook_receipt(self, webhook_id: str) -> dict[str, Any] | None:
        """The receipt of `webhook_id` as stored (state, job_id, ...), or None."""
        return self._get(f"webhook#{webhook_id}")

    # ---- log tails: kept by store/logs.py (LogStore); these read and write the same items ----

    def log_tail(self, job_id: str) -> LogTail | None:
        kept = LogStore(self._table_name).kept(job_id)
        return LogTail(text=kept.text, fetched_at=kept.fetched_at) if kept else None

    def save_log_tail(self, job_id: str, text: str, fetched_at: float) -> None:
        try:
            LogStore(self._table_name).keep(job_id, log_tail(text), len(text), fetched_at)
        except dynamo.ConcurrentUpdate:
            pass  # a longer log of the job is kept already

    def claim_log_refresh(self, job_id: str, now: float, min_interval: float) -> bool:
        """True for exactly one caller per job and interval (see LogStore.claim_refresh)."""
        return LogStore(self._table_name).claim_refresh(job_id, now, min_interval)
