"""RuleBook: the rules in force, reloaded from rules.yaml when the file changes. A file that does not
validate never replaces good rules: it is logged and shown (`last_error`) until it is fixed."""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.logging import get_logger
from services.referral.matching.rules import RulesError, RuleSet, parse_rules

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")
log = get_logger(__name__)


@dataclass(frozen=True)
class _Loaded:
    rules: RuleSet
    version: str  # sha256 of the file's bytes
    loaded_at: datetime


class RuleBook:
    """Holds one validated RuleSet; readers take `current` without locking (one attribute, swapped whole)."""

    def __init__(self, path: Path | str = DEFAULT_RULES):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._failed_version: str | None = None
        try:  # an unreadable or invalid file at startup raises RulesError: no rules, no service
            stamp, data = self._read()
        except OSError as err:
            raise RulesError(str(self.path), [f"cannot read: {err.strerror or err}"]) from None
        self._stamp = stamp
        self._loaded = self._validate(data)

    @property
    def current(self) -> RuleSet:
        return self._loaded.rules

    @property
    def version(self) -> str:
        return self._loaded.version

    @property
    def loaded_at(self) -> datetime:
        return self._loaded.loaded_at

    def reload_if_changed(self) -> bool:
        """Swap in the file's rules if it changed and validates. True when new rules are now in force."""
        with self._lock:
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return False
                stamp, data = self._read()
            except OSError as err:
                self._fail(RulesError(str(self.path), [f"cannot read: {err.strerror or err}"]), version=None)
                return False
            self._stamp = stamp
            version = _hash(data)
            if version == self._loaded.version:
                return False  # touched, not changed
            if version == self._failed_version:
                return False  # the same broken contents: already logged
            try:
                loaded = self._validate(data)
            except RulesError as err:
                self._fail(err, version)
                return False
            self._loaded = loaded
            self.last_error = self.last_error_at = self._failed_version = None
            log.info("matching rules reloaded", path=str(self.path), version=loaded.version[:12],
                     rules=len(loaded.rules.rules))
            return True

    def status(self) -> dict[str, Any]:
        """For an admin endpoint: what is in force, and why a newer file was refused."""
        loaded = self._loaded
        return {
            "path": str(self.path),
            "version": loaded.version,
            "loaded_at": loaded.loaded_at.isoformat(),
            "rules": [r.id for r in loaded.rules.rules],
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
        }

    def _stat(self) -> tuple[int, int]:
        st = self.path.stat()
        return st.st_mtime_ns, st.st_size

    def _read(self) -> tuple[tuple[int, int], bytes]:
        stamp = self._stat()
        return stamp, self.path.read_bytes()

    def _validate(self, data: bytes) -> _Loaded:
        return _Loaded(parse_rules(data, str(self.path)), _hash(data), datetime.now(UTC))

    def _fail(self, err: RulesError, version: str | None) -> None:
        if str(err) == self.last_error:
            return  # still the same problem: logged once
        self.last_error, self.last_error_at, self._failed_version = str(err), datetime.now(UTC), version
        log.error("matching rules refused; previous rules stay in force", path=str(self.path),
                  in_force=self._loaded.version[:12], problems=err.problems)


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
