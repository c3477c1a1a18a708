"""What a QIDO-RS search should find, worked out from the source files with pydicom alone.

Nothing here touches the index: predicates are plain Python over the files' datasets. Where
files disagree (copies of one SOP instance with different attributes, a series whose instances
differ), which one the index keeps is an import-order detail, so such entities are "unsure" and
left out of the comparison.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

Predicate = Callable[[Dataset], bool]
UID_TAG = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}


@dataclass
class Sources:
    """The source datasets by study, series and SOP instance UID."""

    studies: dict[str, list[Dataset]] = field(default_factory=lambda: defaultdict(list))
    series: dict[str, list[Dataset]] = field(default_factory=lambda: defaultdict(list))
    instances: dict[str, list[Dataset]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def read(cls, files: Iterable[Path]) -> Sources:
        sources = cls()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path in files:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                sources.studies[ds.StudyInstanceUID].append(ds)
                sources.series[ds.SeriesInstanceUID].append(ds)
                sources.instances[ds.SOPInstanceUID].append(ds)
        return sources

    def study_of(self, accession: str) -> str:
        return next(
            uid
            for uid, files in self.studies.items()
            if files[0].get("AccessionNumber") == accession
        )

    def series_of(self, study_uid: str) -> dict[str, list[Dataset]]:
        return {
            uid: files
            for uid, files in self.series.items()
            if files[0].StudyInstanceUID == study_uid
        }


@cache
def read_sources(files: tuple[Path, ...]) -> Sources:
    """Sources of these files, read once per session."""
    return Sources.read(files)


@dataclass(frozen=True)
class Expected:
    matches: frozenset[str]
    unsure: frozenset[str]


def expected(
    entities: dict[str, list[Dataset]],
    predicate: Predicate,
    *,
    any_of: Callable[[str], Iterable[list[Dataset]]] | None = None,
) -> Expected:
    """Entities whose every file satisfies ``predicate``; with ``any_of``, entities having a
    child (as ``any_of(uid)`` lists them) whose every file does."""
    matches, unsure = set(), set()
    for uid, files in entities.items():
        groups = list(any_of(uid)) if any_of else [files]
        verdicts = {_verdict(group, predicate) for group in groups}
        if True in verdicts:
            matches.add(uid)
        elif None in verdicts:
            unsure.add(uid)
    return Expected(frozenset(matches), frozenset(unsure))


def _verdict(files: list[Dataset], predicate: Predicate) -> bool | None:
    results = {bool(predicate(ds)) for ds in files}
    return results.pop() if len(results) == 1 else None


# --- predicates -------------------------------------------------------------------------------


def text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def name_groups(ds: Dataset, keyword: str) -> list[str]:
    """A PN's component groups, upper-cased, with '^' and runs of spaces as one space."""
    return [
        " ".join(group.replace("^", " ").split()).upper() for group in text(ds, keyword).split("=")
    ]


def wildcard(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def name_matches(ds: Dataset, keyword: str, pattern: str) -> bool:
    """PN matching as docs/qido.md describes it: case-insensitive, any group."""
    wanted = " ".join(pattern.replace("^", " ").split()).upper()
    return any(wildcard(wanted, group) for group in name_groups(ds, keyword))


def name_starts(ds: Dataset, keyword: str, prefix: str) -> bool:
    """Fuzzy PN matching: some name component starts with ``prefix`` (case-insensitive)."""
    words = [word for group in name_groups(ds, keyword) for word in group.split()]
    return any(word.startswith(prefix.upper()) for word in words)


# Short constructors for tables of search cases.


def eq(keyword: str, value: str) -> Predicate:
    return lambda ds: text(ds, keyword) == value


def like(keyword: str, pattern: str) -> Predicate:
    return lambda ds: wildcard(pattern, text(ds, keyword))


def between(keyword: str, low: str, high: str) -> Predicate:
    """A DA/TM value within [low, high], compared at the bounds' precision. Empty values and
    retired ACR-NEMA dates ('1997.04.24', which the index does not read) never are; the
    colons of ACR-NEMA times ('14:04:38') are dropped, as the index does."""

    def check(ds: Dataset) -> bool:
        value = text(ds, keyword).replace(":", "")
        numeric = re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", value) is not None
        return numeric and low <= value[: len(high)] <= high

    return check


def pn(pattern: str, keyword: str = "PatientName") -> Predicate:
    return lambda ds: name_matches(ds, keyword, pattern)


def fuzzy(prefix: str, keyword: str = "PatientName") -> Predicate:
    return lambda ds: name_starts(ds, keyword, prefix)


def both(*predicates: Predicate) -> Predicate:
    return lambda ds: all(predicate(ds) for predicate in predicates)


def either(*predicates: Predicate) -> Predicate:
    return lambda ds: any(predicate(ds) for predicate in predicates)


def never(ds: Dataset) -> bool:
    return False


def always(ds: Dataset) -> bool:
    return True
