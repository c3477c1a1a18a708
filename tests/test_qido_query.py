"""Parsing QIDO-RS parameters into a SearchQuery (dicom/query.py), without HTTP or SQL."""

from __future__ import annotations

import contextlib
from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomweb_proxy.dicom.query import (
    MAX_VALUES,
    AnyOf,
    DateTimeRange,
    Level,
    QueryError,
    Range,
    SingleValue,
    UidList,
    Universal,
    Wildcard,
    find_attribute,
    parse_search,
)
from dicomweb_proxy.index.matching import COLUMNS, IN_STUDY


def _matcher(level: Level, key: str, value: str):
    (condition,) = parse_search(level, [(key, value)]).conditions
    return condition.matcher


@pytest.mark.parametrize(
    ("key", "value", "matcher"),
    [
        ("PatientName", "Smith^John", SingleValue("Smith^John")),
        ("00100010", "Sm?th*", Wildcard("Sm?th*")),
        ("PatientName", "", Universal()),
        ("PatientName", "*", Universal()),
        ("PatientName", "A\\B*", AnyOf((SingleValue("A"), Wildcard("B*")))),
        ("StudyInstanceUID", "1.2.3", SingleValue("1.2.3")),
        ("StudyInstanceUID", "1.2.3,1.2.4\\1.2.5", UidList(("1.2.3", "1.2.4", "1.2.5"))),
        ("ModalitiesInStudy", "CT,MR", AnyOf((SingleValue("CT"), SingleValue("MR")))),
        ("StudyDescription", "CT, chest", SingleValue("CT, chest")),  # LO keeps commas
        ("SeriesNumber", "+7", SingleValue(7)),
        ("StudyDate", "20200229", Range(date(2020, 2, 29), date(2020, 2, 29))),
        ("StudyDate", "-20200101", Range(None, date(2020, 1, 1))),
        ("StudyDate", "20200101-", Range(date(2020, 1, 1), None)),
        ("StudyTime", "10", Range(time(10), time(10, 59, 59, 999999))),
        ("StudyTime", "1015-101530.5", Range(time(10, 15), time(10, 15, 30, 599999))),
        (
            "ObservationDateTime",
            "202003-20200304101500+0100",
            Range(datetime(2020, 3, 1), datetime(2020, 3, 4, 10, 15, 0, 999999)),
        ),
        ("ObservationDateTime", "2020-0500-", Range(datetime(2020, 1, 1), None)),
        ("ObservationDateTime", "9999", Range(datetime(9999, 1, 1), datetime.max)),
    ],
)
def test_matchers(key, value, matcher):
    assert _matcher(Level.STUDY, key, value) == matcher


def test_date_and_time_ranges_combine_into_one_interval():
    query = parse_search(
        Level.STUDY, [("StudyDate", "20200101-20200102"), ("StudyTime", "2300-0100")]
    )
    (condition,) = query.conditions
    assert condition.attribute.keyword == "StudyDate"
    assert condition.matcher == DateTimeRange(
        find_attribute("StudyTime"),
        datetime(2020, 1, 1, 23),
        datetime(2020, 1, 2, 1, 0, 59, 999999),
    )
    single_date = parse_search(Level.STUDY, [("StudyDate", "20200101"), ("StudyTime", "23-")])
    assert len(single_date.conditions) == 2  # not both ranges: matched separately


def test_path_uids_become_conditions_and_shape_the_returned_attributes():
    query = parse_search(Level.INSTANCE, [], study_uid="1.2", series_uid="1.2.3")
    assert [(c.attribute.keyword, c.matcher) for c in query.conditions] == [
        ("StudyInstanceUID", SingleValue("1.2")),
        ("SeriesInstanceUID", SingleValue("1.2.3")),
    ]
    returned = {key.attribute.keyword for key in query.returned}
    assert {"SOPInstanceUID", "Rows", "StudyInstanceUID", "SeriesInstanceUID"} <= returned
    assert not returned & {"Modality", "PatientName"}
    every = {key.attribute.keyword for key in parse_search(Level.INSTANCE, []).returned}
    assert {"Modality", "PatientName", "NumberOfStudyRelatedInstances"} <= every


def test_includefield_keeps_upper_levels_and_drops_lower_ones():
    query = parse_search(
        Level.SERIES,
        [("includefield", "00081030,SOPClassUID"), ("includefield", "all"), ("limit", "3")],
        study_uid="1.2",
    )
    returned = {key.attribute.keyword for key in query.returned}
    assert "StudyDescription" in returned and "SOPClassUID" not in returned
    assert (query.include_all, query.limit, query.offset) == (True, 3, 0)


def test_orderby_and_options():
    query = parse_search(
        Level.STUDY, [("orderby", "-StudyDate,PatientName"), ("fuzzymatching", "TRUE")]
    )
    assert [(key.attribute.keyword, key.descending) for key in query.orderby] == [
        ("StudyDate", True),
        ("PatientName", False),
    ]
    assert query.fuzzy


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("StudyDate", "2020"),
        ("StudyDate", "20200230"),
        ("StudyDate", "2020*"),
        ("StudyDate", "-"),
        ("StudyTime", "2400"),
        ("StudyTime", "10:15"),
        ("SeriesNumber", "1.0"),
        ("SeriesNumber", "99999999999"),
        ("Rows", "-1"),
        ("StudyInstanceUID", "1.2.x"),
        ("StudyInstanceUID", "1." + "2" * 70),
        ("StudyInstanceUID", "1.2,,1.3"),
        ("PatientName", "x\x00"),
        ("PatientName", "x" * 1025),
        ("limit", "-1"),
        ("limit", "1e3"),
        ("offset", str(2**31)),
        ("fuzzymatching", "1"),
        ("includefield", "NotAKeyword"),
        ("includefield", ",".join(["PatientAge"] * 201)),
        ("orderby", "NotAKeyword"),
    ],
)
def test_bad_input_raises_query_error_naming_the_parameter(key, value):
    with pytest.raises(QueryError) as error:
        parse_search(Level.STUDY, [(key, value)])
    assert error.value.parameter == key


def test_unsupported_parameters_are_listed_not_errors():
    """PS3.18 8.3: the server ignores the parameters it does not support. Keys that are no
    attribute (jQuery's cache buster, charset, a typo, a sequence item path) and attributes
    given a value no index can match are listed, once each, in request order; the attributes
    are still returned. A nameless parameter is no parameter."""
    query = parse_search(
        Level.STUDY,
        [
            ("_", "1700000000"),
            ("charset", "utf-8"),
            ("PatientNam", "Smith"),
            ("00400275.00401001", "RP1"),
            ("ReferencedStudySequence", "x"),
            ("PixelData", "x"),
            ("12345678", "x"),
            ("_", "again"),
            ("", "x"),
            ("PatientName", "Smith"),
        ],
    )
    assert query.unsupported == (
        "_",
        "charset",
        "PatientNam",
        "00400275.00401001",
        "ReferencedStudySequence",
        "PixelData",
        "12345678",
    )
    assert [(c.attribute.keyword, c.parameters) for c in query.conditions] == [
        ("PatientName", ("PatientName",))
    ]
    returned = {key.attribute.keyword for key in query.returned}
    assert "ReferencedStudySequence" in returned  # PixelData: an instance attribute
    universal = parse_search(Level.STUDY, [("ReferencedStudySequence", ""), ("PixelData", "*")])
    assert universal.unsupported == ()  # universal matching: returned, nothing to ignore
    assert {c.matcher for c in universal.conditions} == {Universal()}


def test_unsupported_keys_are_not_checked_but_known_ones_are():
    ignored = parse_search(Level.STUDY, [("x\x00", "a\x00b" + "c" * 2000)])
    assert ignored.unsupported == ("x\x00",)
    with pytest.raises(QueryError):  # a valid attribute: its value is read, and refused
        parse_search(Level.STUDY, [("PatientComments", "a\x00b")])


def test_conditions_name_the_parameters_as_sent():
    query = parse_search(
        Level.STUDY, [("00080020", "20200101-20200102"), ("StudyTime", "10-")], study_uid="1.2"
    )
    assert [c.parameters for c in query.conditions] == [
        ("StudyInstanceUID",),
        ("00080020", "StudyTime"),
    ]


def test_repeated_options_are_errors_but_repeated_keys_are_lists():
    with pytest.raises(QueryError):
        parse_search(Level.STUDY, [("limit", "1"), ("limit", "2")])
    query = parse_search(Level.STUDY, [("Modality", "CT"), ("Modality", "MR")])
    assert query.conditions[0].matcher == AnyOf((SingleValue("CT"), SingleValue("MR")))


def _uids(n: int) -> str:
    return ",".join(f"1.2.{i}" for i in range(n))


@pytest.mark.parametrize(
    "parameters",
    [
        lambda n: [("PatientName", "\\".join(["x"] * n))],
        lambda n: [("ModalitiesInStudy", ",".join(["CT"] * n))],
        lambda n: [("AccessionNumber", f"a{i}") for i in range(n)],
        lambda n: [("StudyInstanceUID", _uids(n))],
        lambda n: [("StudyDate", "\\".join(["-20200101"] * n))],
        lambda n: [
            ("PatientName", "\\".join(["x"] * 60)),
            ("00080050", "\\".join(["a"] * (n - 60))),
        ],
        lambda n: (
            [("StudyDate", "-20200101"), ("StudyTime", "10-")] + [("Modality", "CT")] * (n - 2)
        ),
    ],
)
def test_at_most_max_values_values_in_all_keys_together(parameters):
    options = [("limit", "1"), ("includefield", "all"), ("fuzzymatching", "true")]
    parse_search(Level.STUDY, parameters(MAX_VALUES) + options)  # options are not values
    too_many = parameters(MAX_VALUES + 1)
    with pytest.raises(QueryError) as error:
        parse_search(Level.STUDY, too_many)
    assert error.value.parameter == too_many[-1][0]  # the key that went over the limit
    assert str(error.value) == f"{too_many[-1][0]}: more than {MAX_VALUES} values"


def test_bad_path_uid():
    with pytest.raises(QueryError) as error:
        parse_search(Level.SERIES, [], study_uid="../etc")
    assert error.value.parameter == "StudyInstanceUID"


_KEYS = st.sampled_from(
    [*COLUMNS, *IN_STUDY, "includefield", "limit", "offset", "orderby", "fuzzymatching"]
) | st.text(max_size=12)
_VALUES = st.text(alphabet=st.sampled_from("0123456789.-*?^=,\\ %_'aZü山"), max_size=30)


@given(st.lists(st.tuples(_KEYS, _VALUES | st.text(max_size=20)), max_size=5))
def test_any_input_parses_or_raises_query_error(parameters):
    with contextlib.suppress(QueryError):
        parse_search(Level.INSTANCE, parameters)


@given(
    st.lists(st.integers(0, 10**12), min_size=1, max_size=8).map(
        lambda parts: ".".join(map(str, parts))
    )
)
def test_uids_round_trip(uid):
    if len(uid) <= 64:
        assert _matcher(Level.STUDY, "StudyInstanceUID", uid) == SingleValue(uid)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9998, 12, 31)))
def test_a_dt_value_spans_its_own_precision(moment):
    text = f"{moment.year:04d}" + moment.strftime("%m%d%H%M%S")
    matcher = _matcher(Level.STUDY, "ObservationDateTime", text)
    assert matcher.low == moment.replace(microsecond=0)
    assert matcher.high == moment.replace(microsecond=999999)


def test_index_columns_sit_at_the_level_the_query_model_gives_their_attribute():
    level_of_table = {"patient": 0, "issuer": 0, "study": 1, "series": 2, "instance": 3}
    for keyword, column in COLUMNS.items():
        assert find_attribute(keyword).level == level_of_table[column.table.name], keyword
    for keyword in IN_STUDY:
        assert find_attribute(keyword).level == Level.STUDY
