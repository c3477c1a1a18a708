"""QIDO-RS search requests as a typed query (PS3.18 10.6, matching rules of PS3.4 C.2.2.2).

No HTTP and no SQL: the routes hand over decoded (key, value) pairs, the index turns the
resulting :class:`SearchQuery` into SQL. A bad value of a parameter the server knows is caught
here and reported as a :class:`QueryError` naming the parameter, so bad input never reaches the
database. Parameters it does not support are ignored, as PS3.18 8.3 requires, and listed in
``SearchQuery.unsupported`` for the answer's Warning: keys that are neither a control key nor an
attribute keyword or tag (``_`` of a cache-busting client, ``charset``, a typo, a sequence item
path), and attributes given a value that no index can match (VR SQ, AT, UN and binary VRs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from functools import lru_cache

from pydicom.datadict import get_entry, keyword_dict

from .levels import LEVEL_OF_KEYWORD

MAX_VALUE_LENGTH = 1024
#: Values of all matching keys together (a list counts each of its values): each becomes one or
#: more SQL clauses, and databases limit how large a WHERE clause may grow.
MAX_VALUES = 100
MAX_INCLUDEFIELDS = 200
MAX_INTEGER = 2**31 - 1
RESERVED = frozenset({"includefield", "fuzzymatching", "limit", "offset", "orderby"})


class QueryError(ValueError):
    """A search parameter the server cannot accept; ``parameter`` names it for the client."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class Level(IntEnum):
    """Information-entity levels, outermost first: a level's attributes are also those of
    every entity below it."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3


@dataclass(frozen=True, slots=True)
class Attribute:
    tag: str  # 8 upper-case hex digits, as DICOM JSON keys attributes
    keyword: str  # "" for private tags
    vr: str
    level: Level


# --- matchers (PS3.4 C.2.2.2) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Universal:
    """Empty value or a lone '*': everything matches; the attribute is returned."""


@dataclass(frozen=True, slots=True)
class SingleValue:
    value: str | int | float


@dataclass(frozen=True, slots=True)
class UidList:
    uids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wildcard:
    """'*' matches any run of characters, '?' one character; nothing else is special."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds of a DA (date), TM (time) or DT (naive datetime); None is open."""

    low: date | time | datetime | None
    high: date | time | datetime | None


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Multiple-value matching (PS3.4 C.2.2.2.8): a list of values, any of which may match."""

    matchers: tuple[SingleValue | Wildcard | Range, ...]


@dataclass(frozen=True, slots=True)
class DateTimeRange:
    """A DA range and the TM range of its pair read together as one date-time interval
    (PS3.4 C.2.2.2.5): the condition's attribute is the date, ``time`` its time attribute."""

    time: Attribute
    low: datetime | None
    high: datetime | None


Matcher = Universal | SingleValue | UidList | Wildcard | Range | AnyOf | DateTimeRange


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: Attribute
    matcher: Matcher
    parameters: tuple[str, ...]  # the query keys it stands for, as the client spelled them


@dataclass(frozen=True, slots=True)
class SortKey:
    attribute: Attribute
    descending: bool = False


@dataclass(frozen=True, slots=True)
class ReturnKey:
    attribute: Attribute
    required: bool  # returned empty when unknown (type R, matching keys, includefields)


@dataclass(frozen=True)
class SearchQuery:
    level: Level
    conditions: tuple[Condition, ...]
    returned: tuple[ReturnKey, ...]
    include_all: bool = False
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    orderby: tuple[SortKey, ...] = ()
    unsupported: tuple[str, ...] = ()  # parameters ignored, in request order


# --- attributes --------------------------------------------------------------------------------

_LEVEL_NAMES = {"Patient": Level.PATIENT, "Study": Level.STUDY, "Series": Level.SERIES}
# Attributes of the query models rather than of stored instances (PS3.4 C.3.4), and those every
# level returns (PATIENT: shown at any level).
_QUERY_LEVELS = {
    "ModalitiesInStudy": Level.STUDY,
    "SOPClassesInStudy": Level.STUDY,
    "NumberOfStudyRelatedSeries": Level.STUDY,
    "NumberOfStudyRelatedInstances": Level.STUDY,
    "NumberOfSeriesRelatedInstances": Level.SERIES,
    "SpecificCharacterSet": Level.PATIENT,
    "InstanceAvailability": Level.PATIENT,
    "RetrieveURL": Level.PATIENT,
}
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


@lru_cache(maxsize=4096)
def find_attribute(key: str) -> Attribute | None:
    """The attribute a keyword or 8-hex tag names; None if the data dictionary knows neither
    (private tags are accepted, with VR UN)."""
    if _HEX_TAG.fullmatch(key):
        tag = int(key, 16)
    elif key and key in keyword_dict:  # some retired entries have an empty keyword
        tag = keyword_dict[key]
    else:
        return None
    try:
        vr, _, _, _, keyword = get_entry(tag)
    except KeyError:
        if not (tag >> 16) % 2:
            return None
        vr, keyword = "UN", ""
    level = _QUERY_LEVELS.get(keyword)
    if level is None:
        level = _LEVEL_NAMES.get(LEVEL_OF_KEYWORD.get(keyword, ""), Level.INSTANCE)
    return Attribute(f"{tag:08X}", keyword, vr.split(" or ")[0], level)


def _known(keyword: str) -> Attribute:
    attribute = find_attribute(keyword)
    assert attribute is not None, keyword
    return attribute


# PS3.18 Tables 10.6.3-3 to 10.6.3-5: (keyword, required). Not required: "if known".
_RETURNED: dict[Level, tuple[tuple[str, bool], ...]] = {
    Level.STUDY: (
        ("SpecificCharacterSet", False),
        ("StudyDate", True),
        ("StudyTime", True),
        ("AccessionNumber", True),
        ("InstanceAvailability", False),
        # Returned only when known: OHIF 3.x fails on an empty ModalitiesInStudy.
        ("ModalitiesInStudy", False),
        ("ReferringPhysicianName", True),
        ("TimezoneOffsetFromUTC", False),
        ("RetrieveURL", False),
        ("PatientName", True),
        ("PatientID", True),
        ("PatientBirthDate", True),
        ("PatientSex", True),
        ("StudyInstanceUID", True),
        ("StudyID", True),
        ("NumberOfStudyRelatedSeries", True),
        ("NumberOfStudyRelatedInstances", True),
    ),
    Level.SERIES: (
        ("SpecificCharacterSet", False),
        ("Modality", True),
        ("TimezoneOffsetFromUTC", False),
        ("SeriesDescription", False),
        ("RetrieveURL", False),
        ("SeriesInstanceUID", True),
        ("SeriesNumber", True),
        ("NumberOfSeriesRelatedInstances", True),
        ("PerformedProcedureStepStartDate", False),
        ("PerformedProcedureStepStartTime", False),
        ("RequestAttributesSequence", False),
    ),
    Level.INSTANCE: (
        ("SpecificCharacterSet", False),
        ("SOPClassUID", True),
        ("SOPInstanceUID", True),
        ("InstanceAvailability", False),
        ("TimezoneOffsetFromUTC", False),
        ("RetrieveURL", True),
        ("InstanceNumber", True),
        ("Rows", False),
        ("Columns", False),
        ("BitsAllocated", False),
        ("NumberOfFrames", False),
    ),
}
# Date and time attributes matched as one date-time when both carry a range.
_DATE_TIME_PAIRS = {
    "StudyDate": "StudyTime",
    "SeriesDate": "SeriesTime",
    "AcquisitionDate": "AcquisitionTime",
    "ContentDate": "ContentTime",
    "PerformedProcedureStepStartDate": "PerformedProcedureStepStartTime",
}
_UNSPLIT_VRS = frozenset({"LT", "ST", "UT", "UR"})  # a backslash is part of their values
_INTEGER_VRS = {
    "IS": (-(2**31), 2**31 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "UL": (0, 2**32 - 1),
    "US": (0, 2**16 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
}
_REAL_VRS = frozenset({"DS", "FL", "FD"})
_UNMATCHABLE_VRS = frozenset({"SQ", "AT", "OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_COUNT = re.compile(r"[0-9]{1,10}")
_REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ufffd]")
_DA = r"[0-9]{8}"
_TM = r"[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
_DT = r"[0-9]{4}(?:[0-9]{2}(?:[0-9]{2}(?:" + _TM + r")?)?)?(?:[+-][0-9]{4})?"
_TEMPORAL = {"DA": _DA, "TM": _TM, "DT": _DT}
_RANGES = {vr: re.compile(f"({pattern})?-({pattern})?") for vr, pattern in _TEMPORAL.items()}
_SINGLES = {vr: re.compile(pattern) for vr, pattern in _TEMPORAL.items()}


def parse_search(
    level: Level,
    parameters: Iterable[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> SearchQuery:
    """Read decoded query parameters of a search at ``level``; ``study_uid`` and ``series_uid``
    come from the resource path. QueryError on a bad value of a parameter the server knows."""
    values: dict[Attribute, list[str]] = {}
    keys: dict[Attribute, str] = {}
    options: dict[str, list[str]] = {name: [] for name in RESERVED}
    sent: dict[str, None] = {}  # every key, in request order, once
    unsupported: set[str] = set()
    counted = 0
    for key, value in parameters:
        sent[key] = None
        if key in RESERVED:
            _check_value(key, value)
            options[key].append(value)
            continue
        attribute = find_attribute(key)
        if attribute is None:  # sequence item paths too: not supported
            if key:  # a nameless one ('?=x') is no parameter at all
                unsupported.add(key)
            continue
        _check_value(key, value)
        counted += len(_split(attribute.vr, value))
        if counted > MAX_VALUES:
            raise QueryError(key, f"more than {MAX_VALUES} values")
        values.setdefault(attribute, []).append(value)
        keys.setdefault(attribute, key)

    conditions = [
        Condition(_known(keyword), SingleValue(_uid(keyword, uid)), (keyword,))
        for keyword, uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid))
        if uid is not None
    ]
    paired, combined = _date_time_ranges(values, keys)
    conditions += paired
    for attribute, texts in values.items():
        if attribute in combined:
            continue
        matcher = _matcher(attribute, texts, keys[attribute])
        if matcher is None:  # returned all the same, as universal matching returns it
            unsupported.add(keys[attribute])
        else:
            conditions.append(Condition(attribute, matcher, (keys[attribute],)))
    include_all, included = _includefields(options["includefield"])
    return SearchQuery(
        level=level,
        conditions=tuple(conditions),
        returned=_returned(level, study_uid, series_uid, list(values), included),
        include_all=include_all,
        fuzzy=_boolean("fuzzymatching", options["fuzzymatching"]),
        limit=_count("limit", options["limit"]),
        offset=_count("offset", options["offset"]) or 0,
        orderby=_orderby(options["orderby"]),
        unsupported=tuple(key for key in sent if key in unsupported),
    )


def _check_value(key: str, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH:
        raise QueryError(key, f"value longer than {MAX_VALUE_LENGTH} characters")
    if _CONTROL.search(value):
        raise QueryError(key, "control characters or invalid UTF-8 in the value")


def _uid(parameter: str, text: str) -> str:
    text = text.strip()
    if len(text) > 64 or not _UID.fullmatch(text):
        raise QueryError(parameter, f"{text[:70]!r} is not a UID")
    return text


def _boolean(parameter: str, texts: list[str]) -> bool:
    text = _single(parameter, texts)
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise QueryError(parameter, "must be true or false")
    return text.lower() == "true"


def _count(parameter: str, texts: list[str]) -> int | None:
    text = _single(parameter, texts)
    if text is None:
        return None
    if not _COUNT.fullmatch(text) or int(text) > MAX_INTEGER:
        raise QueryError(parameter, f"must be a whole number from 0 to {MAX_INTEGER}")
    return int(text)


def _single(parameter: str, texts: list[str]) -> str | None:
    if len(texts) > 1:
        raise QueryError(parameter, "given more than once")
    return texts[0].strip() if texts else None


def _includefields(texts: list[str]) -> tuple[bool, list[Attribute]]:
    names = [name.strip() for text in texts for name in text.split(",") if name.strip()]
    if len(names) > MAX_INCLUDEFIELDS:
        raise QueryError("includefield", f"more than {MAX_INCLUDEFIELDS} attributes")
    include_all = "all" in names
    attributes = []
    for name in names:
        if name == "all":
            continue
        attribute = find_attribute(name)
        if attribute is None:
            raise QueryError("includefield", f"unknown attribute {name!r}")
        attributes.append(attribute)
    return include_all, attributes


def _orderby(texts: list[str]) -> tuple[SortKey, ...]:
    keys = []
    for text in texts:
        for name in (name.strip() for name in text.split(",")):
            descending = name.startswith("-")
            attribute = find_attribute(name.lstrip("-+"))
            if attribute is None:
                raise QueryError("orderby", f"unknown attribute {name!r}")
            keys.append(SortKey(attribute, descending))
    return tuple(keys)


def _returned(
    level: Level,
    study_uid: str | None,
    series_uid: str | None,
    matched: list[Attribute],
    included: list[Attribute],
) -> tuple[ReturnKey, ...]:
    """PS3.18 10.6.3.3: the level's table, the tables of the levels above it that the path does
    not fix, the parents' UIDs, then matching keys (returned empty when unknown, as C-FIND
    does) and includefields (when known) at or above the level."""
    levels = [level]
    if level > Level.STUDY and study_uid is None:
        levels.append(Level.STUDY)
    if level > Level.SERIES and series_uid is None:
        levels.append(Level.SERIES)
    keys = {keyword: required for each in sorted(levels) for keyword, required in _RETURNED[each]}
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID")[: level - Level.STUDY]:
        keys[keyword] = True
    returned = {
        (attribute := _known(keyword)): ReturnKey(attribute, required)
        for keyword, required in keys.items()
    }
    for attributes, required in ((matched, True), (included, False)):
        for attribute in attributes:
            if attribute.level <= level and attribute not in returned:
                returned[attribute] = ReturnKey(attribute, required)
    return tuple(returned.values())


# --- values ------------------------------------------------------------------------------------


def _date_time_ranges(
    values: dict[Attribute, list[str]], keys: dict[Attribute, str]
) -> tuple[list[Condition], set[Attribute]]:
    """Conditions for date/time pairs both given as ranges, and the attributes they consume."""
    by_keyword = {attribute.keyword: attribute for attribute in values}
    conditions = []
    consumed: set[Attribute] = set()
    for date_keyword, time_keyword in _DATE_TIME_PAIRS.items():
        day, clock = by_keyword.get(date_keyword), by_keyword.get(time_keyword)
        if day is None or clock is None or len(values[day]) != 1 or len(values[clock]) != 1:
            continue
        day_text, clock_text = values[day][0].strip(), values[clock][0].strip()
        if "-" not in day_text or "-" not in clock_text:
            continue
        day_low, day_high = _range_texts("DA", day_text, keys[day])
        clock_low, clock_high = _range_texts("TM", clock_text, keys[clock])
        low = high = None
        if day_low:
            start = _bounds("TM", clock_low)[0] if clock_low else time.min
            low = datetime.combine(_bounds("DA", day_low)[0], start)  # type: ignore[arg-type]
        if day_high:
            end = _bounds("TM", clock_high)[1] if clock_high else time.max
            high = datetime.combine(_bounds("DA", day_high)[1], end)  # type: ignore[arg-type]
        matcher = DateTimeRange(clock, low, high)
        conditions.append(Condition(day, matcher, (keys[day], keys[clock])))
        consumed |= {day, clock}
    return conditions, consumed


def _matcher(attribute: Attribute, texts: list[str], parameter: str) -> Matcher | None:
    """How the values match; None for a value no index can match (binary VRs, sequences:
    QIDO-RS matches sequence items only by their paths)."""
    parts = [part.strip() for text in texts for part in _split(attribute.vr, text)]
    if any(part in ("", "*") for part in parts):
        if len(parts) > 1 and "" in parts:
            raise QueryError(parameter, "empty value in a list of values")
        return Universal()
    if attribute.vr in _UNMATCHABLE_VRS:
        return None
    if attribute.vr == "UI":
        uids = tuple(dict.fromkeys(_uid(parameter, part) for part in parts))
        return UidList(uids) if len(uids) > 1 else SingleValue(uids[0])
    terms = tuple(_term(attribute.vr, part, parameter) for part in parts)
    return AnyOf(terms) if len(terms) > 1 else terms[0]


def _split(vr: str, text: str) -> list[str]:
    if vr in ("UI", "CS"):
        return re.split(r"[,\\]", text)  # neither allows a comma in its values
    return [text] if vr in _UNSPLIT_VRS else text.split("\\")


def _term(vr: str, text: str, parameter: str) -> SingleValue | Wildcard | Range:
    if vr in _TEMPORAL:
        low, high = _range_texts(vr, text, parameter)
        return Range(_bounds(vr, low)[0] if low else None, _bounds(vr, high)[1] if high else None)
    if vr in _INTEGER_VRS:
        lowest, highest = _INTEGER_VRS[vr]
        if not _INTEGER.fullmatch(text) or not lowest <= int(text) <= highest:
            raise QueryError(parameter, f"{text!r} is not a whole number of VR {vr}")
        return SingleValue(int(text))
    if vr in _REAL_VRS:
        if not _REAL.fullmatch(text):
            raise QueryError(parameter, f"{text!r} is not a number")
        return SingleValue(float(text))
    if "*" in text or "?" in text:
        return Wildcard(text)
    return SingleValue(text)


def _range_texts(vr: str, text: str, parameter: str) -> tuple[str | None, str | None]:
    """The (low, high) texts of a DA/TM/DT value: a range 'a-b', '-b', 'a-', or one value,
    which is both bounds. Each bound is checked for a real date or time."""
    single = _SINGLES[vr].fullmatch(text)
    match = None if single else _RANGES[vr].fullmatch(text)
    if not single and not (match and (match[1] or match[2])):
        raise QueryError(parameter, f"{text!r} is not a {vr} value or range")
    low, high = (text, text) if single else (match[1], match[2])  # type: ignore[index]
    for bound in (low, high):
        if bound:
            try:
                _bounds(vr, bound)
            except ValueError:
                raise QueryError(parameter, f"{bound!r} is not a valid {vr} value") from None
    return low, high


def _bounds(vr: str, text: str) -> tuple[date | time | datetime, date | time | datetime]:
    """First and last instant a DA, TM or DT value stands for at its precision: TM '10' is
    10:00 to 10:59:59.999999. ValueError if a field is out of range. DT offsets are dropped,
    as the index stores naive local times."""
    if vr == "DA":
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return day, day
    if vr == "TM":
        start, end = _bounds("DT", "19700101" + text)
        return start.time(), end.time()  # type: ignore[union-attr]
    digits, _, fraction = re.split(r"[+-]", text)[0].partition(".")
    fields = [int(digits[:4])] + [int(digits[i : i + 2]) for i in range(4, len(digits), 2)]
    fields += [1, 1][len(fields) - 1 :] if len(fields) < 3 else []
    microsecond = int(fraction.ljust(6, "0")) if fraction else 0
    start = datetime(*fields, microsecond=microsecond)  # type: ignore[misc]
    try:
        end = _next(start, len(digits), len(fraction)) - timedelta(microseconds=1)
    except (OverflowError, ValueError):  # past year 9999
        end = datetime.max
    return start, end


def _next(start: datetime, digits: int, fraction_digits: int) -> datetime:
    """The first instant after the span of a DT value with that many digits."""
    if fraction_digits:
        return start + timedelta(microseconds=10 ** (6 - fraction_digits))
    if digits == 4:
        return start.replace(year=start.year + 1)
    if digits == 6:
        if start.month == 12:
            return _next(start.replace(month=1), 4, 0)
        return start.replace(month=start.month + 1)
    units = {8: timedelta(days=1), 10: timedelta(hours=1), 12: timedelta(minutes=1)}
    return start + units.get(digits, timedelta(seconds=1))
