"""What a job id and a webhook id may be: one definition, checked wherever one enters.

Both become parts of DynamoDB keys (`job_id`, `created_sort`, `logs#<id>`,
`missing#<id>`, `webhook#<id>`), which DynamoDB caps at 2048 bytes (partition)
and 1024 bytes (sort); and both appear in URLs, logs and answers. So both are
bounded where they come in (a path parameter, a webhook's header or body, a
provider's list item) and nothing past that edge checks them again.

- A job id is what the provider issues: Replicate's prediction and training ids
  are 26 lowercase base32 characters (`rrr4z55ocneg2rdh4bh4q9c6pc`).
- A webhook id is a Standard Webhooks `webhook-id`: Svix-style `msg_` plus a
  27-character KSUID (`msg_2KWPBgLlAfxdpx2AI54pPJ85f4W`); other senders use
  UUIDs.

Both are 1–128 characters of ASCII letters, digits, `_` and `-`: four times
the longest id either issues today, and far inside every key limit, yet
nothing that needs escaping in a URL path, a log line or a key separator
(`#`, `/`, `.`, `%`, whitespace and non-ASCII are all outside it).
"""

from __future__ import annotations

import re
from typing import Any

MAX_ID_LENGTH = 128
ID_CHARACTERS = "A-Za-z0-9_-"
# The JSON Schema / OpenAPI form of the rule (ECMA and Python agree on it: no `$`-before-newline, ASCII ranges).
ID_PATTERN = f"^[{ID_CHARACTERS}]{{1,{MAX_ID_LENGTH}}}$"
ID_RULE = f"1 to {MAX_ID_LENGTH} characters of A-Z, a-z, 0-9, '_' and '-'"

_ID = re.compile(f"[{ID_CHARACTERS}]{{1,{MAX_ID_LENGTH}}}")


class InvalidIdentifier(ValueError):
    """A job id or webhook id outside the definition; the message says which and why (never the whole value)."""


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def is_webhook_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def _checked(value: object, what: str) -> str:
    if isinstance(value, str) and _ID.fullmatch(value) is not None:
        return value
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{what} must be a string, not {type(value).__name__}")
    # Only the start of the value: it may be megabytes long.
    raise InvalidIdentifier(f"{what} must be {ID_RULE} (got {len(value)} characters: {value[:40]!r})")


def job_id(value: object) -> str:
    """`value` when it is a job id; raises InvalidIdentifier otherwise."""
    return _checked(value, "a job id")


def webhook_id(value: object) -> str:
    """`value` when it is a webhook id; raises InvalidIdentifier otherwise."""
    return _checked(value, "a webhook id")


def json_schema() -> dict[str, Any]:
    """The rule as a JSON Schema (for the OpenAPI document)."""
    return {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN}
