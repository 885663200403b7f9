"""An append-only journal of JSON lines, each on disk (fsync'd) before `append` returns.

The local DynamoDB server writes one line per successful write request and
answers the client only after `append` returned, so a line that is not whole
on disk (the process died while writing it) belongs to a request whose answer
was never sent: `read` ignores it and `open` cuts it off, so that the next line
does not land after half a line.

A line the process did finish is never followed by garbage: only a tail can be
torn. A broken line with whole lines after it is damage from elsewhere, and
`read` refuses it rather than replay around a hole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class JournalCorrupt(Exception):
    """A broken line with whole lines after it: not a torn tail, so not safe to skip."""


def _whole_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The entries of `data` up to its torn tail, if any, and the length of that whole part in bytes."""
    entries: list[dict[str, Any]] = []
    good = 0
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        if end == -1:
            break  # no newline: the last write never finished
        try:
            entry = json.loads(data[position:end])
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            if any(_parses(line) for line in data[end + 1 :].split(b"\n")):
                raise JournalCorrupt(f"a broken line at byte {position} has whole lines after it")
            break
        entries.append(entry)
        position = good = end + 1
    return entries, good


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _fsync_directory(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class Journal:
    """One file of JSON lines. Not thread-safe: its owner serializes the calls (the server's lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: int | None = None
        self.size = 0

    def read(self) -> list[dict[str, Any]]:
        """Every whole entry, in order; a torn last line is left out."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return _whole_lines(data)[0]

    def open(self) -> None:
        """Open for appending, first cutting off a torn last line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with open(self.path, "rb") as stream:
                good = _whole_lines(stream.read())[1]
            if os.fstat(handle).st_size != good:
                os.ftruncate(handle, good)
                os.fsync(handle)
            os.lseek(handle, good, os.SEEK_SET)
        except BaseException:
            os.close(handle)
            raise
        if created:
            _fsync_directory(self.path.parent)
        self._handle = handle
        self.size = good

    def append(self, entry: dict[str, Any]) -> None:
        """Write one line and wait until it is on disk. On failure the file is cut back to what it was."""
        if self._handle is None:
            raise RuntimeError("the journal is not open")
        line = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._handle, view) :]
            os.fdatasync(self._handle)
        except BaseException:
            try:
                os.ftruncate(self._handle, self.size)
                os.lseek(self._handle, self.size, os.SEEK_SET)
            except OSError:
                pass  # a torn line is left behind; the next start cuts it off
            raise
        self.size += len(line)

    def clear(self) -> None:
        """Empty the journal (its entries are in a snapshot now), durably."""
        if self._handle is None:
            raise RuntimeError("the journal is not open")
        os.ftruncate(self._handle, 0)
        os.lseek(self._handle, 0, os.SEEK_SET)
        os.fsync(self._handle)
        self.size = 0

    def close(self) -> None:
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None
