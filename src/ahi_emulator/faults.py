"""Faults the emulator injects on demand: latency per operation and AHI errors.

Tests set them at run time (``POST /_emulator/faults``) or at start (``--latency``, ``--fault``),
to see the client retry throttling and 5xx bursts, time out, or report access denied. The JSON
form, also what ``GET /_emulator/faults`` answers::

    {"latency": {"GetImageFrame": 0.5, "*": 0.01},
     "errors": [{"error": "ThrottlingException", "count": 3, "operations": ["GetImageFrame"]},
                {"error": "InternalServerException", "fraction": 0.2},
                {"error": "AccessDeniedException", "operations": ["GetImageSet"]}]}

An error rule with ``count`` fires on the next *count* matching calls, one with ``fraction`` on
that share of them at random, one with neither on every matching call. Operations default to all.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

#: AHI error types (the x-amzn-ErrorType botocore reads) and their HTTP status.
ERROR_STATUS = {
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
    "AccessDeniedException": 403,
    "ValidationException": 400,
    "ConflictException": 409,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 402,
}


@dataclass
class ErrorRule:
    error: str
    operations: frozenset[str] | None = None
    count: int | None = None
    fraction: float | None = None

    def fires(self, operation: str) -> bool:
        if self.operations is not None and operation not in self.operations:
            return False
        if self.count is not None:
            if self.count <= 0:
                return False
            self.count -= 1
            return True
        if self.fraction is not None:
            return random.random() < self.fraction
        return True

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"error": self.error}
        if self.operations is not None:
            rule["operations"] = sorted(self.operations)
        if self.count is not None:
            rule["count"] = self.count
        if self.fraction is not None:
            rule["fraction"] = self.fraction
        return rule


class Faults:
    """The current faults and per-operation call counts, shared by request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency: dict[str, float] = {}
        self._errors: list[ErrorRule] = []
        self.calls: Counter[str] = Counter()

    def configure(self, document: dict[str, Any]) -> None:
        """Replace every fault with those *document* describes; ValueError if it is malformed."""
        latency, errors = parse_faults(document)
        with self._lock:
            self._latency, self._errors = latency, errors

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": dict(self._latency),
                "errors": [rule.to_json() for rule in self._errors],
            }

    def on_call(self, operation: str) -> tuple[float, str | None]:
        """Count a call; return the delay to add and the error to answer, if any."""
        with self._lock:
            self.calls[operation] += 1
            delay = self._latency.get(operation, self._latency.get("*", 0.0))
            error = next((rule.error for rule in self._errors if rule.fires(operation)), None)
        return delay, error


def parse_faults(document: dict[str, Any]) -> tuple[dict[str, float], list[ErrorRule]]:
    if not isinstance(document, dict) or set(document) - {"latency", "errors"}:
        raise ValueError('faults are {"latency": {...}, "errors": [...]}')
    latency = {str(op): float(seconds) for op, seconds in (document.get("latency") or {}).items()}
    if any(seconds < 0 for seconds in latency.values()):
        raise ValueError("latency must not be negative")
    errors = []
    for item in document.get("errors") or []:
        if item.get("error") not in ERROR_STATUS:
            raise ValueError(f"error must be one of {', '.join(ERROR_STATUS)}")
        operations = item.get("operations")
        fraction = item.get("fraction")
        if fraction is not None and not 0 <= float(fraction) <= 1:
            raise ValueError("fraction must be between 0 and 1")
        errors.append(
            ErrorRule(
                error=item["error"],
                operations=frozenset(operations) if operations else None,
                count=int(item["count"]) if item.get("count") is not None else None,
                fraction=float(fraction) if fraction is not None else None,
            )
        )
    return latency, errors


def parse_fault_flag(text: str) -> dict[str, Any]:
    """``ERROR[@OP,OP][:N|:FRACTION]`` from the command line as an error rule's JSON:
    ``ThrottlingException:5``, ``InternalServerException@GetImageFrame:0.1``."""
    spec, _, amount = text.partition(":")
    error, _, operations = spec.partition("@")
    rule: dict[str, Any] = {"error": error}
    if operations:
        rule["operations"] = operations.split(",")
    if "." in amount:
        rule["fraction"] = float(amount)
    elif amount:
        rule["count"] = int(amount)
    return rule
