"""Exactly-once notifications: one claim item per (job, event) in the state table.

`notify#<job_id>#<event>` is claimed with a conditional put before the event
is published, and marked `published` after; a publish that failed releases
the claim so that the stream's retry publishes. A replayed stream record finds
the event published and publishes nothing. A claim carries a lease (the
claiming invocation's deadline): a claim left by an invocation that died is
taken over once its lease has run out, never while the invocation may still
be publishing.

The webhook channel's delivery state lives on the same item (`webhook`:
pending → delivering → delivered, or retrying after a failed invocation), and
every delivery not yet done is listed in one outbox item, so the poller's
tick finds deliveries whose hand-off was lost without a scan. One item holds
at most 400 KB: some 2,500 deliveries not done at once (a receiver down for
hours while thousands of jobs end); the tick gives up deliveries left undone
for half an hour, which keeps it far below that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from jobsync.store import dynamo
from jobsync.store.keyed_items import KeyedItems

_CLAIMED, _PUBLISHED = "claimed", "published"
PENDING, DELIVERING, RETRYING, DELIVERED, ABANDONED = "pending", "delivering", "retrying", "delivered", "abandoned"
OUTBOX_KEY = "notify-outbox"
# Stream records are kept 24 hours: a claim outlives every replay of its record by far.
_KEEP_SECONDS = 30 * 86_400


class Claim(Enum):
    TAKEN = "taken"  # this caller publishes
    DONE = "done"  # published already: nothing to do
    BUSY = "busy"  # another invocation holds a live claim: try again later


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery as stored: its state, what to send, and how it has gone so far."""

    event_id: str
    state: str | None
    payload: dict[str, Any] | None
    updated_at: float
    lease_until: float
    resumes: int


def _key(event_id: str) -> str:
    return f"notify#{event_id}"


class NotificationStore(KeyedItems):
    """Over the state table (items `notify#<job_id>#<event>` and the outbox)."""

    def _conditional_update(self, pk: str, **kwargs: Any) -> bool:
        """One conditional UpdateItem; False when its condition failed."""
        try:
            with dynamo.conditional_write():
                self._table.update_item(Key={"pk": pk}, **kwargs)
        except dynamo.ConcurrentUpdate:
            return False
        return True

    # ---- publishing -----------------------------------------------------------------------------

    def claim(self, event_id: str, claim: str, now: float, lease_until: float) -> Claim:
        """Claim the event for publishing until `lease_until` (epoch seconds)."""
        try:
            with dynamo.conditional_write():
                self._table.put_item(
                    Item=dynamo.to_dynamo(
                        {
                            "pk": _key(event_id),
                            "state": _CLAIMED,
                            "claim": claim,
                            "lease_until": lease_until,
                            "expires_at": int(now) + _KEEP_SECONDS,
                        }
                    ),
                    ConditionExpression="attribute_not_exists(pk) OR (#state = :claimed AND lease_until < :now)",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":claimed": _CLAIMED, ":now": dynamo.to_dynamo(now)},
                )
        except dynamo.ConcurrentUpdate:
            item = self._get_plain(_key(event_id)) or {}
            return Claim.DONE if item.get("state") == _PUBLISHED else Claim.BUSY
        return Claim.TAKEN

    def published(self, event_id: str, claim: str, now: float, delivery: dict[str, Any] | None = None) -> None:
        """Mark the claimed event published; with `delivery`, a webhook delivery of that payload is pending.

        The outbox learns of the delivery first: a crash between the two writes leaves an outbox entry
        whose item says what to do, never a delivery nobody knows about.
        """
        sets = ["#state = :published", "updated_at = :now"]
        values: dict[str, Any] = {":published": _PUBLISHED, ":claim": claim, ":now": dynamo.to_dynamo(now)}
        if delivery is not None:
            self._outbox("ADD", event_id)
            sets += ["webhook = :pending", "payload = :payload", "resumes = :zero"]
            values.update({":pending": PENDING, ":payload": json.dumps(delivery), ":zero": 0})
        updates = f"SET {', '.join(sets)} REMOVE claim, lease_until"
        # False only when our lease ran out and another invocation took the claim: it marks the item.
        self._conditional_update(
            _key(event_id),
            UpdateExpression=updates,
            ConditionExpression="claim = :claim",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )

    def release(self, event_id: str, claim: str) -> None:
        """Give the claim up (the publish failed), so that a retry publishes."""
        try:
            with dynamo.conditional_write():
                self._table.delete_item(
                    Key={"pk": _key(event_id)},
                    ConditionExpression="claim = :claim",
                    ExpressionAttributeValues={":claim": claim},
                )
        except dynamo.ConcurrentUpdate:
            pass  # no longer ours to release

    def state(self, event_id: str) -> dict[str, Any] | None:
        """The claim item as stored (state, webhook, ...), or None."""
        return self._get_plain(_key(event_id))

    # ---- webhook deliveries ---------------------------------------------------------------------

    def claim_delivery(self, event_id: str, now: float, lease_until: float) -> bool:
        """True for exactly one caller at a time: the one that may POST the event to the webhook."""
        return self._conditional_update(
            _key(event_id),
            UpdateExpression="SET webhook = :delivering, webhook_lease_until = :lease, updated_at = :now",
            ConditionExpression=(
                "webhook IN (:pending, :retrying) OR (webhook = :delivering AND webhook_lease_until < :now)"
            ),
            ExpressionAttributeValues={
                ":delivering": DELIVERING,
                ":pending": PENDING,
                ":retrying": RETRYING,
                ":lease": dynamo.to_dynamo(lease_until),
                ":now": dynamo.to_dynamo(now),
            },
        )

    def delivered(self, event_id: str, now: float) -> None:
        self._settle(event_id, DELIVERED, now)
        self._outbox("DELETE", event_id)

    def delivery_failed(self, event_id: str, now: float) -> None:
        """The POST failed for now: Lambda's retry (or the poller's resume) may claim it again."""
        self._settle(event_id, RETRYING, now)

    def abandon(self, event_id: str, now: float) -> None:
        """Stop resuming this delivery (its failures are in the dead-letter queue)."""
        self._settle(event_id, ABANDONED, now)
        self._outbox("DELETE", event_id)

    def drop_from_outbox(self, event_id: str) -> None:
        self._outbox("DELETE", event_id)

    def _settle(self, event_id: str, webhook: str, now: float) -> None:
        # The item may have expired (TTL) since: nothing is left to settle then.
        self._conditional_update(
            _key(event_id),
            UpdateExpression="SET webhook = :webhook, updated_at = :now REMOVE webhook_lease_until",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":webhook": webhook, ":now": dynamo.to_dynamo(now)},
        )

    def note_resumed(self, event_id: str, now: float) -> None:
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": _key(event_id)},
                UpdateExpression="SET updated_at = :now, webhook = :pending ADD resumes :one",
                ExpressionAttributeValues={":now": dynamo.to_dynamo(now), ":one": 1, ":pending": PENDING},
            )

    def delivery(self, event_id: str) -> Delivery | None:
        item = self._get_plain(_key(event_id))
        if item is None:
            return None
        payload = item.get("payload")
        return Delivery(
            event_id=event_id,
            state=item.get("webhook"),
            payload=json.loads(payload) if isinstance(payload, str) else None,
            updated_at=float(item.get("updated_at", 0)),
            lease_until=float(item.get("webhook_lease_until", 0)),
            resumes=int(item.get("resumes", 0)),
        )

    # ---- the outbox: deliveries not yet done --------------------------------------------------------

    def pending_deliveries(self) -> list[str]:
        item = self._get_plain(OUTBOX_KEY) or {}
        return sorted(item.get("event_ids") or ())

    def _outbox(self, action: str, event_id: str) -> None:
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": OUTBOX_KEY},
                UpdateExpression=f"{action} event_ids :ids",
                ExpressionAttributeValues={":ids": {event_id}},
            )
