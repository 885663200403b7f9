"""A provider's history import, as one item in the state table: what is left to read, and who reads it.

The item is the import's durable truth. What is left is a list of segments (a
list's page to read next, and whether to read down to the list's end or only
to the first page already stored); `imported` counts the jobs the import has
stored; a lease (a token and its expiry) names the one importer that may read.
A hand-off to the importer is only a nudge: when one is lost, the lease
expires and the poller's tick (or the next sync) starts the import again from
here.

Every change is a read-modify-write conditioned on the item's version, so a
sync adding a segment and the importer moving its cursor never undo each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from jobsync.store import dynamo
from jobsync.store.keyed_items import KeyedItems

# A change that keeps losing its race is given up after this many reads (each writer retries at once).
_ATTEMPTS = 20


@dataclass(frozen=True)
class Segment:
    """A stretch of one provider list still to import, newest first from `page` (None: the list's top)."""

    kind: str
    page: str | None
    # True for a list whose whole history is not stored yet: read on to its end, past any page
    # already stored. False for new jobs on top of a stored history: stop at the first page of
    # jobs already stored and ended.
    to_end: bool

    def as_item(self) -> dict[str, Any]:
        return {"kind": self.kind, "page": self.page, "to_end": self.to_end}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Segment:
        page = item.get("page")
        return cls(str(item["kind"]), page if isinstance(page, str) else None, bool(item.get("to_end")))


@dataclass(frozen=True)
class ImportState:
    provider: str
    segments: tuple[Segment, ...] = ()
    # The kinds of job list whose whole history has been stored once.
    history_imported: frozenset[str] = frozenset()
    imported: int = 0  # jobs stored by the import since it started (the last one, once it is done)
    lease: str | None = None
    lease_until: float = 0.0  # epoch seconds
    version: int = 0  # 0: no item yet
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # attributes of later versions, kept

    @property
    def running(self) -> bool:
        """Something is left to import."""
        return bool(self.segments)

    def leased(self, now: float) -> bool:
        """An importer holds the lease (or a hand-off to one is on its way)."""
        return self.lease is not None and self.lease_until > now

    def pending(self, kind: str) -> tuple[Segment, ...]:
        return tuple(segment for segment in self.segments if segment.kind == kind)


Change = Callable[[ImportState], "ImportState | None"]


class ImportStore(KeyedItems):
    @staticmethod
    def _key(provider: str) -> str:
        return f"import#{provider}"

    def get(self, provider: str) -> ImportState:
        return _from_item(provider, self._get_plain(self._key(provider)))

    def change(self, provider: str, change: Change, current: ImportState | None = None) -> ImportState:
        """Apply `change` to the stored state and write the result (None or no change: write nothing);
        the state as stored.

        `current` (a state this caller read or wrote itself) saves the first read; when another
        writer changed the item since, it is read again and `change` applied to that.
        """
        state = current if current is not None else self.get(provider)
        for _ in range(_ATTEMPTS):
            changed = change(state)
            if changed is None or changed == state:
                return state
            written = replace(changed, version=state.version + 1)
            if self._put(written, expected_version=state.version):
                return written
            state = self.get(provider)
        raise dynamo.ConcurrentUpdate()

    def _put(self, state: ImportState, *, expected_version: int) -> bool:
        item = {
            **state.extra,
            "pk": self._key(state.provider),
            "segments": [segment.as_item() for segment in state.segments],
            "history_imported": sorted(state.history_imported),
            "imported": state.imported,
            "lease": state.lease,
            "lease_until": state.lease_until,
            "version": state.version,
            "updated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :expected"
        values = {} if expected_version == 0 else {":expected": expected_version}
        try:
            with dynamo.conditional_write():
                self._table.put_item(
                    Item=dynamo.to_dynamo(item),
                    ConditionExpression=condition,
                    **({"ExpressionAttributeValues": values} if values else {}),
                )
        except dynamo.ConcurrentUpdate:
            return False
        return True


_OWN_FIELDS = frozenset(
    {"pk", "segments", "history_imported", "imported", "lease", "lease_until", "version", "updated_at"}
)


def _from_item(provider: str, item: dict[str, Any] | None) -> ImportState:
    if not item:
        return ImportState(provider)
    lease = item.get("lease")
    return ImportState(
        provider=provider,
        segments=tuple(Segment.from_item(segment) for segment in item.get("segments") or []),
        history_imported=frozenset(str(kind) for kind in item.get("history_imported") or []),
        imported=int(item.get("imported", 0)),
        lease=lease if isinstance(lease, str) else None,
        lease_until=float(item.get("lease_until", 0)),
        version=int(item.get("version", 0)),
        extra={key: value for key, value in item.items() if key not in _OWN_FIELDS},
    )
