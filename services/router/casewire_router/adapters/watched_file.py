"""A configuration file on disk, watched: a changed file is parsed, checked against the rest of
the configuration in force, and put in force without a restart (the rules file, the
saved-replies file).

The file is re-read by path at every check and compared by content hash, not by inode or
modification time: a Kubernetes ConfigMap update swaps a symlink (`..data`) to a new
directory, and the file seen through the path changes while its mtime may not. A file that
does not parse, or does not fit the rest of the configuration, is logged (where, not what) and
counted; what is in force stays.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import structlog
from casewire_common.periodic import Periodic
from prometheus_client import Counter

from casewire_router.domain.yaml_files import YamlFileError

log = structlog.get_logger(__name__)

T = TypeVar("T")
_UNREADABLE = "unreadable"  # in place of a content hash: the file could not be read


def read_file(path: Path) -> tuple[str, str]:
    """The file's SHA-256 and its text."""
    content = path.read_bytes()
    return hashlib.sha256(content).hexdigest(), content.decode("utf-8")


class WatchedFile(ABC, Generic[T]):
    """Checks `path` every `interval` seconds; `parse(text, source)` (raising a YamlFileError)
    makes the new configuration, `fits(parsed, text)` lists what keeps it from going in force
    beside the rest (empty: it fits), and `on_change` puts it in force. Each kind of file
    says in `_announce` what went in force."""

    def __init__(
        self,
        *,
        what: str,
        path: Path,
        digest: str,
        parse: Callable[[str, str], T],
        fits: Callable[[T, str], list[str]],
        on_change: Callable[[T], None],
        reloads: Counter,
        failures: Counter,
        interval: float,
        hint: str,
    ) -> None:
        self._what = what
        self.path = path
        self._parse = parse
        self._fits = fits
        self._on_change = on_change
        self._reloads = reloads
        self._failures = failures
        self._hint = hint
        # What was last seen, good or bad: a broken file is reported once, not at every check.
        self._seen_digest = digest
        self._in_force_digest = digest
        name = f"{what.replace(' ', '-')}-watcher"
        self._checks = Periodic(name, interval, self.check, wait_first=True)

    def start(self) -> None:
        self._checks.start()

    async def stop(self) -> None:
        await self._checks.stop()

    def retry(self) -> None:
        """Check a refused file again at the next check, though it did not change: the rest of
        the configuration changed, and it may fit now. (An unreadable file is read at every
        check anyway.)"""
        if self._seen_digest != _UNREADABLE:
            self._seen_digest = self._in_force_digest

    async def check(self) -> T | None:
        """Read the file once; the new configuration if it changed, is valid and fits, else
        None."""
        try:
            digest, text = await asyncio.to_thread(read_file, self.path)
        except (OSError, UnicodeDecodeError) as error:
            if self._seen_digest != _UNREADABLE:  # reported once, not at every check
                self._seen_digest = _UNREADABLE
                log.error(
                    f"{self._what} file unreadable, the {self._what} in force stay",
                    path=str(self.path),
                    error=type(error).__name__,
                )
                self._failures.inc()
            return None
        if digest == self._seen_digest:
            return None
        self._seen_digest = digest
        try:
            # Parsing a large file takes a while: not on the event loop.
            parsed = await asyncio.to_thread(self._parse, text, str(self.path))
            problems = self._fits(parsed, text)
        except YamlFileError as error:
            problems = error.problems
        if problems:
            log.error(
                f"{self._what} file invalid, the {self._what} in force stay",
                path=str(self.path),
                digest=digest[:12],
                problems=len(problems),
                hint=self._hint,
            )
            self._failures.inc()
            return None
        self._in_force_digest = digest
        self._on_change(parsed)
        self._announce(parsed)
        self._reloads.inc()
        return parsed

    @abstractmethod
    def _announce(self, parsed: T) -> None:
        """Log (and show in metrics) what was just put in force."""
