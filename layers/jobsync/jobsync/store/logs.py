"""Kept log tails, the shared log-read claim and the final tails still to fetch, in the state table.

One item per job, `logs#<job_id>`:

- `tail_z`: the kept tail (at most 64 KiB of whole lines, see domain/logs.py), zlib-compressed and
  base64-encoded: logs compress about eightfold, and DynamoDB bills a write by the item's size.
  `has_older`: the log has older lines than these; `log_chars`: how long the provider's text was
  (a log only grows, so a shorter text is an older read that finished late); `fetched_at`: when.
- `claimed_at`: the shared claim that lets one reader per job and interval ask the provider.
- `final_tail`: `kept` or `gone` once the tail of an ended job was fetched for good (or the provider
  answered that its logs are gone); `final_lease_until` while a tail keeper is fetching it.
- `followed_until`: a WebSocket client follows the job's lines (a hint that saves the followers
  query when nobody follows; the follows themselves live in the connections table).

The ended jobs whose final tail is still to fetch are the members of a few string sets,
`final-logs#pending#<shard>`: the durable to-do list the tail keeper and the poller's tick read.
Beside `job_ids`, each shard item says when its jobs were last handed to a tail keeper: the jobs
handed off in minute m are the members of the string set `handed_<m>` (epoch minutes), so the tick
hands off again only the jobs no recent hand-off holds (read in the same batch as the list, and
written in the same request that adds to it). A tail keeper takes its jobs out of its minute's set
as it settles them; the tick removes minutes older than its bound when it hands their jobs off again.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jobsync.domain.logs import LogTail
from jobsync.store import dynamo
from jobsync.store.keyed_items import KeyedItems

_LOG_TAIL_DAYS = 90
_DAY = 86_400
KEPT, GONE = "kept", "gone"
# Pending final tails are spread over this many items: one item holds about 14,000 Replicate job ids
# (400 KB), each pending job about twice (the list, and its last hand-off's minute), and concurrent
# writers of different jobs rarely touch the same item.
PENDING_SHARDS = 4
_PENDING_PREFIX = "final-logs#pending#"
# `handed_<epoch minute>`: the jobs of the shard handed to a tail keeper in that minute.
_HANDED_PREFIX = "handed_"
_HANDED_MINUTE = 60
# The jobs some WebSocket client follows (a string set): the poller's tick reads their logs.
_FOLLOWED_KEY = "follows#jobs"


@dataclass(frozen=True)
class KeptLog:
    tail: LogTail
    fetched_at: float
    final: str | None = None  # KEPT, GONE or None (not settled)
    followed_until: float = 0.0

    @property
    def text(self) -> str:
        return self.tail.text


def _pack(text: str) -> str:
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 6)).decode("ascii")


def _unpack(packed: str) -> str:
    return zlib.decompress(base64.b64decode(packed)).decode("utf-8")


def _kept_log(item: dict[str, Any] | None) -> KeptLog | None:
    if not item:
        return None
    if "tail_z" in item:
        text = _unpack(item["tail_z"])
    elif "text" in item:  # kept before tails were compressed
        text = item["text"]
    else:
        text = None
    lines = tuple(text.split("\n")) if text else ()
    return KeptLog(
        tail=LogTail(lines, has_older=bool(item.get("has_older", False))),
        fetched_at=float(item.get("fetched_at", 0)),
        final=item.get("final_tail"),
        followed_until=float(item.get("followed_until", 0)),
    )


def _handed(at: float) -> str:
    """The attribute that holds the jobs handed off at `at` (epoch seconds): one per minute."""
    return f"{_HANDED_PREFIX}{int(at // _HANDED_MINUTE)}"


def _handed_minute(attribute: str) -> int | None:
    if not attribute.startswith(_HANDED_PREFIX):
        return None
    minute = attribute[len(_HANDED_PREFIX) :]
    return int(minute) if minute.isdigit() else None


def _by_shard(job_ids: Iterable[str]) -> dict[int, set[str]]:
    by_shard: dict[int, set[str]] = {}
    for job_id in job_ids:
        by_shard.setdefault(pending_shard(job_id), set()).add(job_id)
    return by_shard


def pending_shard(job_id: str) -> int:
    # A stable spread (Python's hash() of a str changes from process to process).
    return zlib.crc32(job_id.encode("utf-8")) % PENDING_SHARDS


class LogStore(KeyedItems):
    def kept(self, job_id: str) -> KeptLog | None:
        """The kept tail of `job_id` with its bookkeeping; None when nothing was ever stored for it."""
        item = self._get(f"logs#{job_id}")
        # An item that holds only bookkeeping (a claim, a follow, a lease) has no tail yet.
        if not item or not {"tail_z", "text", "final_tail"} & item.keys():
            return None
        return _kept_log(item)

    def keep(self, job_id: str, tail: LogTail, log_chars: int, fetched_at: float) -> KeptLog | None:
        """Store `tail` (of a log `log_chars` long) unless a longer log of the job is kept already.

        Returns what was kept before (None when nothing was), read in the same write; raises
        ConcurrentUpdate when the kept log came from a longer text (a read that finished late).
        """
        with dynamo.conditional_write():
            answer = self._table.update_item(
                Key={"pk": f"logs#{job_id}"},
                UpdateExpression="SET tail_z = :tail, has_older = :older, log_chars = :chars, "
                "fetched_at = :fetched, expires_at = :expires REMOVE #text",
                ConditionExpression="attribute_not_exists(log_chars) OR log_chars <= :chars",
                ExpressionAttributeNames={"#text": "text"},
                ExpressionAttributeValues={
                    ":tail": _pack(tail.text),
                    ":older": tail.has_older,
                    ":chars": log_chars,
                    ":fetched": dynamo.to_dynamo(fetched_at),
                    ":expires": int(fetched_at) + _LOG_TAIL_DAYS * _DAY,
                },
                ReturnValues="ALL_OLD",
            )
        return _kept_log(answer.get("Attributes"))

    def claim_refresh(self, job_id: str, now: float, min_interval: float) -> bool:
        """True for exactly one caller per job and interval: the one that may ask the provider.

        Every Lambda instance shares this claim, so fifty dashboards polling the
        same job cost one provider request per interval, not fifty.
        """
        try:
            with dynamo.conditional_write():
                self._table.update_item(
                    Key={"pk": f"logs#{job_id}"},
                    UpdateExpression="SET claimed_at = :now",
                    ConditionExpression="attribute_not_exists(claimed_at) OR claimed_at <= :stale",
                    ExpressionAttributeValues={
                        ":now": dynamo.to_dynamo(now),
                        ":stale": dynamo.to_dynamo(now - min_interval),
                    },
                )
        except dynamo.ConcurrentUpdate:
            return False
        return True

    def mark_followed(self, job_id: str, until: float) -> None:
        """Note that a client follows `job_id`'s lines until `until` at the latest (epoch seconds)."""
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": f"logs#{job_id}"},
                UpdateExpression="SET followed_until = :until, expires_at = if_not_exists(expires_at, :expires)",
                ExpressionAttributeValues={
                    ":until": dynamo.to_dynamo(until),
                    ":expires": int(until) + _LOG_TAIL_DAYS * _DAY,
                },
            )

    def add_followed(self, job_id: str) -> None:
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": _FOLLOWED_KEY},
                UpdateExpression="ADD job_ids :id",
                ExpressionAttributeValues={":id": {job_id}},
            )

    def followed_jobs(self) -> list[str]:
        """The jobs some client followed (and may still follow), sorted."""
        item = self._get(_FOLLOWED_KEY) or {}
        return sorted(item.get("job_ids", set()))

    def drop_followed(self, job_ids: Iterable[str]) -> None:
        ids = set(job_ids)
        if not ids:
            return
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": _FOLLOWED_KEY},
                UpdateExpression="DELETE job_ids :ids",
                ExpressionAttributeValues={":ids": ids},
            )

    # ---- final tails of ended jobs ---------------------------------------------------------

    def add_pending_final(self, job_ids: Iterable[str], handed_off_at: float | None = None) -> None:
        """Put `job_ids` on the durable list of final tails to fetch (one write per shard touched); with
        `handed_off_at`, recorded as handed to a tail keeper then, in the same write."""
        with dynamo.translated_errors():
            for shard, members in sorted(_by_shard(job_ids).items()):
                if handed_off_at is None:
                    self._table.update_item(
                        Key={"pk": f"{_PENDING_PREFIX}{shard}"},
                        UpdateExpression="ADD job_ids :ids",
                        ExpressionAttributeValues={":ids": members},
                    )
                    continue
                self._table.update_item(
                    Key={"pk": f"{_PENDING_PREFIX}{shard}"},
                    UpdateExpression="ADD job_ids :ids, #handed :ids",
                    ExpressionAttributeNames={"#handed": _handed(handed_off_at)},
                    ExpressionAttributeValues={":ids": members},
                )

    def _pending_items(self) -> list[dict[str, Any]]:
        """The shard items of the pending list (one batch read)."""
        keys = [{"pk": f"{_PENDING_PREFIX}{shard}"} for shard in range(PENDING_SHARDS)]
        return list(dynamo.batch_get(self._table_name, keys, consistent=True))

    def pending_final(self) -> list[str]:
        """Every job whose final tail is still to fetch (one batch read of the shards), sorted."""
        pending: set[str] = set()
        for item in self._pending_items():
            pending.update(item.get("job_ids", set()))
        return sorted(pending)

    def take_stale_pending_final(self, now: float, handed_off_within: float) -> list[str]:
        """The pending jobs not handed to a tail keeper within `handed_off_within` seconds before `now`,
        sorted, recorded as handed off at `now` (the caller hands them off, or calls
        `forget_final_hand_off` when it could not).

        One batch read; one write per shard that has such jobs, which also drops that shard's minutes
        older than the bound. A tick with nothing stale writes nothing.
        """
        oldest_fresh = int((now - handed_off_within) // _HANDED_MINUTE)
        stale_ids: set[str] = set()
        with dynamo.translated_errors():
            for item in self._pending_items():
                pending = set(item.get("job_ids", set()))
                fresh: set[str] = set()
                expired: list[str] = []
                for attribute, members in item.items():
                    minute = _handed_minute(attribute)
                    if minute is None:
                        continue
                    if minute >= oldest_fresh:
                        fresh.update(members)
                    else:
                        expired.append(attribute)
                stale = pending - fresh
                if not stale:
                    continue
                names = {"#now": _handed(now)} | {f"#old{i}": name for i, name in enumerate(sorted(expired))}
                expression = "ADD #now :ids" + (
                    " REMOVE " + ", ".join(f"#old{i}" for i in range(len(expired))) if expired else ""
                )
                self._table.update_item(
                    Key={"pk": item["pk"]},
                    UpdateExpression=expression,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":ids": stale},
                )
                stale_ids |= stale
        return sorted(stale_ids)

    def forget_final_hand_off(self, job_ids: Iterable[str], handed_off_at: float) -> None:
        """Take `job_ids` out of the hand-off made at `handed_off_at` (it failed, or the tail keeper left
        them to a later run): the next tick hands them off again. One write per shard touched."""
        with dynamo.translated_errors():
            for shard, members in sorted(_by_shard(job_ids).items()):
                self._table.update_item(
                    Key={"pk": f"{_PENDING_PREFIX}{shard}"},
                    UpdateExpression="DELETE #handed :ids",
                    ExpressionAttributeNames={"#handed": _handed(handed_off_at)},
                    ExpressionAttributeValues={":ids": members},
                )

    def lease_final(self, job_id: str, now: float, seconds: float) -> float | None:
        """When the first fetch of `job_id`'s final tail was tried (epoch seconds), if the caller may fetch
        it now (not settled, no lease running); None otherwise."""
        try:
            with dynamo.conditional_write():
                answer = self._table.update_item(
                    Key={"pk": f"logs#{job_id}"},
                    UpdateExpression="SET final_lease_until = :until, final_first_try = if_not_exists(final_first_try, "
                    ":now), expires_at = if_not_exists(expires_at, :expires)",
                    ConditionExpression="attribute_not_exists(final_tail) AND "
                    "(attribute_not_exists(final_lease_until) OR final_lease_until <= :now)",
                    ExpressionAttributeValues={
                        ":now": dynamo.to_dynamo(now),
                        ":until": dynamo.to_dynamo(now + seconds),
                        ":expires": int(now) + _LOG_TAIL_DAYS * _DAY,
                    },
                    ReturnValues="ALL_NEW",
                )
        except dynamo.ConcurrentUpdate:
            return None
        return float(answer["Attributes"]["final_first_try"])

    def settle_final(self, job_id: str, outcome: str, now: float, handed_off_at: float | None = None) -> None:
        """Record that `job_id`'s final tail is `outcome` (KEPT or GONE) for good, and take it off the list
        (and out of the hand-off made at `handed_off_at`, when given)."""
        with dynamo.translated_errors():
            self._table.update_item(
                Key={"pk": f"logs#{job_id}"},
                UpdateExpression="SET final_tail = :outcome, final_at = :now REMOVE final_lease_until",
                ExpressionAttributeValues={":outcome": outcome, ":now": dynamo.to_dynamo(now)},
            )
        self.drop_pending_final(job_id, handed_off_at)

    def release_final(self, job_id: str) -> None:
        """Give a lease up (the fetch failed): the next run may try again at once."""
        with dynamo.translated_errors():
            self._table.update_item(Key={"pk": f"logs#{job_id}"}, UpdateExpression="REMOVE final_lease_until")

    def drop_pending_final(self, job_id: str, handed_off_at: float | None = None) -> None:
        key = {"pk": f"{_PENDING_PREFIX}{pending_shard(job_id)}"}
        with dynamo.translated_errors():
            if handed_off_at is None:
                self._table.update_item(
                    Key=key, UpdateExpression="DELETE job_ids :id", ExpressionAttributeValues={":id": {job_id}}
                )
                return
            self._table.update_item(
                Key=key,
                UpdateExpression="DELETE job_ids :id, #handed :id",
                ExpressionAttributeNames={"#handed": _handed(handed_off_at)},
                ExpressionAttributeValues={":id": {job_id}},
            )

    def final_state(self, job_id: str) -> str | None:
        kept = self.kept(job_id)
        return kept.final if kept else None
