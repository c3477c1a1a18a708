"""QIDO-RS against the real server on SQLite, PostgreSQL and MariaDB: every result set equals
the one worked out from the source files (tests/qido_expected.py), whatever the database."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.exc import SAWarning

from dicomweb_proxy.dicom.query import MAX_VALUES, Level, parse_search
from dicomweb_proxy.index.database import create_index_engine
from dicomweb_proxy.index.schema import series, study
from dicomweb_proxy.index.search import search

from .qido_expected import (
    UID_TAG,
    Sources,
    always,
    between,
    both,
    either,
    eq,
    expected,
    fuzzy,
    like,
    never,
    pn,
    read_sources,
    text,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def _in(low: str, high: str, pair: str = "Study") -> Callable[[Dataset], bool]:
    """{pair}Date + {pair}Time within [low, high] (ISO date-times), as PS3.4 C.2.2.2.5.1 reads
    a date range with a time range: on the first and last day an unknown time matches. Dates
    other than YYYYMMDD (ACR-NEMA '1997.04.24') are unknown, the colons of ACR-NEMA times
    ('14:04:38') are dropped."""
    first, last = datetime.fromisoformat(low), datetime.fromisoformat(high)

    def check(ds: Dataset) -> bool:
        day = text(ds, f"{pair}Date")
        clock = re.fullmatch(
            r"([0-9]{2,6})(?:\.([0-9]{1,6}))?", text(ds, f"{pair}Time").replace(":", "")
        )
        if not re.fullmatch(r"[0-9]{8}", day):
            return False
        if clock is None:
            return first.date() <= datetime.strptime(day, "%Y%m%d").date() <= last.date()
        digits = clock[1].ljust(6, "0") + "." + (clock[2] or "").ljust(6, "0")
        return first <= datetime.strptime(day + digits, "%Y%m%d%H%M%S.%f") <= last

    return check


S, SE, I = "/studies", "/series", "/instances"  # noqa: E741
SERIES, INSTANCES = "series", "instances"
# (path, parameters, predicate on one source file, None if it applies to the found entity's
# files, or the level below whose entities one must satisfy it: SERIES or INSTANCES)
CASES = [
    (S, {}, always, None),
    (S, {"PatientName": "Müller^Jürgen"}, eq("PatientName", "Müller^Jürgen"), None),
    (S, {"PatientName": "müller^JÜRGEN"}, pn("Müller^Jürgen"), None),
    (S, {"PatientName": "*ü*"}, pn("*ü*"), None),
    (S, {"PatientName": "Ö?t*"}, pn("Ö?t*"), None),
    (S, {"PatientName": "山田^太郎"}, pn("山田^太郎"), None),
    (S, {"PatientName": "yam", "fuzzymatching": "true"}, fuzzy("yam"), None),
    (S, {"PatientName": "jos", "fuzzymatching": "true"}, fuzzy("jos"), None),
    (S, {"PatientName": "Nuñez^José\\Öztürk*"}, either(pn("Nuñez^José"), pn("Öztürk*")), None),
    (S, {"ReferringPhysicianName": "*weiß*"}, pn("*weiß*", "ReferringPhysicianName"), None),
    (S, {"PatientID": "PAT-003"}, eq("PatientID", "PAT-003"), None),
    (S, {"00100020": "PAT-003"}, eq("PatientID", "PAT-003"), None),
    (S, {"PatientSex": "F"}, eq("PatientSex", "F"), None),
    # What the index records for an unknown PatientID or issuer is not a value.
    (S, {"PatientID": "NO_PID"}, eq("PatientID", "NO_PID"), None),
    (S, {"PatientID": "NO_*"}, like("PatientID", "NO_*"), None),
    (SE, {"IssuerOfPatientID": "DEFAULT_DOMAIN"}, eq("IssuerOfPatientID", "DEFAULT_DOMAIN"), None),
    (
        I,
        {"IssuerOfPatientID": "DEF*\\TOKYO-GH"},
        either(like("IssuerOfPatientID", "DEF*"), eq("IssuerOfPatientID", "TOKYO-GH")),
        None,
    ),
    (S, {"IssuerOfPatientID": "KLINIKUM-SUED"}, eq("IssuerOfPatientID", "KLINIKUM-SUED"), None),
    (SE, {"IssuerOfPatientID": "TOKYO-GH"}, eq("IssuerOfPatientID", "TOKYO-GH"), None),
    (S, {"AccessionNumber": "ACC-1001"}, eq("AccessionNumber", "ACC-1001"), None),
    (S, {"StudyDescription": "CT*"}, like("StudyDescription", "CT*"), None),
    (S, {"StudyDate": "20240301-20240430"}, between("StudyDate", "20240301", "20240430"), None),
    (S, {"StudyDate": "-20050101"}, between("StudyDate", "0", "20050101"), None),
    (S, {"StudyDate": "20240501-"}, between("StudyDate", "20240501", "99999999"), None),
    (S, {"StudyDate": "20240304"}, eq("StudyDate", "20240304"), None),
    (
        S,
        {"StudyDate": "20240311-20240312", "StudyTime": "2300-0100"},
        _in("2024-03-11 23:00", "2024-03-12 01:00:59.999999"),
        None,
    ),
    (S, {"StudyTime": "08-1000"}, between("StudyTime", "080000", "100059"), None),
    (S, {"ModalitiesInStudy": "MR"}, eq("Modality", "MR"), SERIES),
    (S, {"ModalitiesInStudy": "CT,MR"}, either(eq("Modality", "CT"), eq("Modality", "MR")), SERIES),
    (S, {"Modality": "SR"}, eq("Modality", "SR"), SERIES),
    (S, {"PatientName": "%"}, eq("PatientName", "%"), None),
    (S, {"PatientName": "_*"}, like("PatientName", "_*"), None),
    (S, {"AccessionNumber": "ACC-100_"}, eq("AccessionNumber", "ACC-100_"), None),
    (S, {"StudyDescription": "*%*"}, like("StudyDescription", "*%*"), None),
    (S, {"PatientName": "*'; DROP TABLE study; --*"}, never, None),
    (S, {"PatientID": "x' OR '1'='1"}, never, None),
    (S, {"PatientID": 'x" OR 1=1; SELECT * FROM patient --'}, never, None),
    (SE, {"Modality": "CT"}, eq("Modality", "CT"), None),
    (SE, {"SeriesNumber": "2"}, eq("SeriesNumber", "2"), None),
    (SE, {"SeriesDescription": "*axial*"}, like("SeriesDescription", "*axial*"), None),
    (
        SE,
        {"PatientName": "Yamada*", "BodyPartExamined": "HEAD"},
        both(pn("Yamada*"), eq("BodyPartExamined", "HEAD")),
        None,
    ),
    ("/studies/{ACC-2001}/series", {}, always, None),
    ("/studies/{ACC-3001}/series", {"Modality": "US"}, eq("Modality", "US"), None),
    (I, {"SOPClassUID": CT_IMAGE}, eq("SOPClassUID", CT_IMAGE), None),
    (I, {"Modality": "US"}, eq("Modality", "US"), None),
    (
        I,
        {"InstanceNumber": "3", "PatientName": "*ü*"},
        both(eq("InstanceNumber", "3"), pn("*ü*")),
        None,
    ),
    ("/studies/{ACC-2001}/instances", {"Rows": "256"}, eq("Rows", "256"), None),
    ("/studies/{ACC-4001}/series/{ACC-4001:3}/instances", {}, always, None),
]
# Date and time ranges of a lower level: both are matched on the same series or instance.
DATE_TIME_CASES = [
    # The only series of 2024-03-04 is at 09:15: a 14:31 series of another day must not count.
    (
        S,
        {"SeriesDate": "20240304-20240304", "SeriesTime": "1400-1500"},
        _in("2024-03-04 14:00", "2024-03-04 15:00:59.999999", "Series"),
        SERIES,
    ),
    (
        S,
        {"SeriesDate": "20240304-20240402", "SeriesTime": "1000-1440"},
        _in("2024-03-04 10:00", "2024-04-02 14:40:59.999999", "Series"),
        SERIES,
    ),
    (
        S,
        {"SeriesDate": "20240311-20240312", "SeriesTime": "2354-0007"},
        _in("2024-03-11 23:54", "2024-03-12 00:07:59.999999", "Series"),
        SERIES,
    ),
    (
        S,
        {"ContentDate": "20240304-20240304", "ContentTime": "1400-1500"},
        _in("2024-03-04 14:00", "2024-03-04 15:00:59.999999", "Content"),
        INSTANCES,
    ),
    (
        S,
        {"ContentDate": "20240304-20240311", "ContentTime": "0915-2354"},
        _in("2024-03-04 09:15", "2024-03-11 23:54:59.999999", "Content"),
        INSTANCES,
    ),
    (
        S,
        {"AcquisitionDate": "19970430-20051130", "AcquisitionTime": "1129-1411"},
        _in("1997-04-30 11:29", "2005-11-30 14:11:59.999999", "Acquisition"),
        INSTANCES,
    ),
    (
        SE,
        {"AcquisitionDate": "20240520-20240520", "AcquisitionTime": "080740-080741"},
        _in("2024-05-20 08:07:40", "2024-05-20 08:07:41.999999", "Acquisition"),
        INSTANCES,
    ),
    (
        SE,
        {"ContentDate": "20240311-", "ContentTime": "2355-"},
        _in("2024-03-11 23:55", "9999-12-31 23:59:59.999999", "Content"),
        INSTANCES,
    ),
    (
        I,
        {"SeriesDate": "20240311-20240312", "SeriesTime": "2354-0007"},
        _in("2024-03-11 23:54", "2024-03-12 00:07:59.999999", "Series"),
        None,
    ),
]
CASES += DATE_TIME_CASES


def _resolve(path: str, sources: Sources) -> tuple[str, dict[str, list[Dataset]]]:
    """The path with its {accession} and {accession:series number} placeholders filled in, and
    the source entities the search ranges over."""
    parts, study_uid, series_uid = [], None, None
    for part in path.strip("/").split("/"):
        if part.startswith("{") and ":" in part:
            accession, number = part.strip("{}").split(":")
            series_uid = next(
                uid
                for uid, files in sources.series_of(sources.study_of(accession)).items()
                if str(files[0].SeriesNumber) == number
            )
            part = series_uid
        elif part.startswith("{"):
            study_uid = part = sources.study_of(part.strip("{}"))
        parts.append(part)
    resource = parts[-1]
    entities = {"studies": sources.studies, "series": sources.series}.get(
        resource, sources.instances
    )
    if study_uid:
        entities = {u: f for u, f in entities.items() if f[0].StudyInstanceUID == study_uid}
    if series_uid:
        entities = {u: f for u, f in entities.items() if f[0].SeriesInstanceUID == series_uid}
    return "/" + "/".join(parts), entities


def _below(
    sources: Sources, resource: str, below: str | None
) -> Callable[[str], list[list[Dataset]]] | None:
    """The entities of level ``below`` (SERIES, INSTANCES) of a study or series, by its UID."""
    if below is None:
        return None
    parent = "StudyInstanceUID" if resource == "studies" else "SeriesInstanceUID"
    children = sources.series if below == SERIES else sources.instances
    by_parent: dict[str, list[list[Dataset]]] = {}
    for files in children.values():
        by_parent.setdefault(files[0].get(parent), []).append(files)
    return lambda uid: by_parent.get(uid, [])


def _check_search(
    samples_server: str,
    sources: Sources,
    path: str,
    parameters: dict[str, str] | list[tuple[str, str]],
    predicate: Callable[[Dataset], bool],
    below: str | None,
) -> set[str]:
    """Search and compare with what the source files hold; the UIDs found."""
    url, entities = _resolve(path, sources)
    response = httpx.get(samples_server + url, params=parameters)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    resource = url.rsplit("/", 1)[-1]
    tag = UID_TAG[resource]
    found = [dataset[tag]["Value"][0] for dataset in response.json()]
    assert len(found) == len(set(found)) == int(response.headers["x-total-count"])
    want = expected(entities, predicate, any_of=_below(sources, resource, below))
    assert set(found) - want.unsure == want.matches
    assert len(want.unsure) <= len(entities) // 4  # the comparison still covers most entities
    return set(found)


@pytest.mark.parametrize(
    ("path", "parameters", "predicate", "below"),
    CASES,
    ids=[f"{path} {parameters}" for path, parameters, _, _ in CASES],
)
def test_search_finds_what_the_source_files_hold(
    samples_server, imported_samples, path, parameters, predicate, below
):
    sources = read_sources(tuple(imported_samples.files))
    _check_search(samples_server, sources, path, parameters, predicate, below)


_LEVELS = {S: Level.STUDY, SE: Level.SERIES, I: Level.INSTANCE}


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
@pytest.mark.parametrize(
    ("path", "parameters"),
    [(path, parameters) for path, parameters, _, _ in DATE_TIME_CASES],
    ids=[f"{path} {parameters}" for path, parameters, _, _ in DATE_TIME_CASES],
)
def test_lower_level_date_time_ranges_have_no_cartesian_product(imported_samples, path, parameters):
    """SQLAlchemy warns when a SELECT (or a subquery) joins tables without a condition: here
    that warning is an error, for the page and the count statement of each search."""
    engine = create_index_engine(imported_samples.database_url)
    try:
        with engine.connect() as connection:
            # The check is on: a cartesian product warns on this engine.
            with pytest.warns(SAWarning, match="cartesian product"):
                connection.execute(select(study.c.study_pkey, series.c.series_pkey).limit(0))
            for limit in (None, 0):  # limit=0 runs the count statement
                query = parse_search(_LEVELS[path], list(parameters.items()))
                search(connection, dataclasses.replace(query, limit=limit))
    finally:
        engine.dispose()


def _many(key: str, first: str, other: Callable[[int], str], separator: str = "\\"):
    """``key`` with ``first`` and made-up values after it: n values in all, in one parameter
    (``separator`` between them) or, with no separator, in repeated ones."""

    def parameters(n: int) -> list[tuple[str, str]]:
        values = [first, *map(other, range(1, n))]
        if not separator:
            return [(key, value) for value in values]
        return [(key, separator.join(values))]

    return parameters


def _half_and_half(first, second):
    return lambda n: first(n // 2) + second(n - n // 2)


# (path, parameters as a function of the number of values, predicate, level below)
MANY_VALUES = [
    (S, _many("PatientName", "Müller^Jürgen", "x{}".format), pn("Müller^Jürgen"), None),
    (S, _many("PatientName", "*ü*", "x{}*".format), pn("*ü*"), None),
    (I, _many("PatientName", "Øvrebø*", "Ø{}".format), pn("Øvrebø*"), None),
    (S, _many("PatientName", "x", lambda _: "x"), never, None),
    (S, _many("ModalitiesInStudy", "MR", "X{}".format, ","), eq("Modality", "MR"), SERIES),
    (
        S,
        _many("AccessionNumber", "ACC-1001", "a{}".format, ""),
        eq("AccessionNumber", "ACC-1001"),
        None,
    ),
    (SE, _many("SeriesNumber", "2", "10{:02d}".format, ""), eq("SeriesNumber", "2"), None),
    (
        S,
        _many("StudyDate", "20240301-20240331", lambda i: f"18{i:02d}0101-18{i:02d}0102", ""),
        between("StudyDate", "20240301", "20240331"),
        None,
    ),
    (
        SE,
        _half_and_half(
            _many("PatientName", "yam", "z{}".format), _many("00080090", "suz", "w{}".format)
        ),
        both(fuzzy("yam"), fuzzy("suz", "ReferringPhysicianName")),
        None,
    ),
]


@pytest.mark.parametrize(
    ("path", "parameters", "predicate", "below"),
    MANY_VALUES,
    ids=[str(parameters(2)) for _, parameters, _, _ in MANY_VALUES],
)
def test_up_to_max_values_values_in_all_and_not_one_more(
    samples_server, imported_samples, path, parameters, predicate, below
):
    """Each value is a clause of the WHERE clause (a person name several): a search may give
    at most MAX_VALUES of them, in all keys together; one more is a 400 naming the key, never
    a database error."""
    sources = read_sources(tuple(imported_samples.files))
    most = parameters(MAX_VALUES)
    fuzzy_names = [("fuzzymatching", "true")] if "00080090" in dict(most) else []
    _check_search(samples_server, sources, path, most + fuzzy_names, predicate, below)
    too_many = parameters(MAX_VALUES + 1)
    response = httpx.get(samples_server + path, params=too_many + fuzzy_names)
    assert response.status_code == 400, response.text
    assert response.text.startswith(f"{too_many[-1][0]}: more than {MAX_VALUES} values")


@pytest.mark.parametrize(
    ("key", "value"),
    [("PatientName", "\\".join(["x"] * 300)), ("ModalitiesInStudy", ",".join(["A"] * 510))],
)
def test_long_lists_within_the_value_length_are_a_400(samples_server, key, value):
    response = httpx.get(f"{samples_server}/studies", params={key: value})
    assert response.status_code == 400, response.text
    assert response.text.startswith(f"{key}: more than {MAX_VALUES} values")


def test_study_results_carry_the_required_and_computed_attributes(samples_server, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    response = httpx.get(f"{samples_server}/studies", params={"AccessionNumber": "ACC-2001"})
    (study,) = response.json()
    files = sources.studies[sources.study_of("ACC-2001")]
    uid = files[0].StudyInstanceUID
    assert study["0020000D"] == {"vr": "UI", "Value": [uid]}
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Øvrebø^Åse"}]}
    assert study["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert study["00080061"] == {"vr": "CS", "Value": ["MR"]}
    assert study["00201206"] == {"vr": "IS", "Value": [len({ds.SeriesInstanceUID for ds in files})]}
    assert study["00201208"] == {"vr": "IS", "Value": [len(files)]}
    assert study["00081190"] == {"vr": "UR", "Value": [f"{samples_server}/studies/{uid}"]}
    required = {"00080020", "00080030", "00080050", "00080090", "00100020", "00100030"}
    assert required | {"00100040", "00200010"} <= study.keys()
    assert "0008103E" not in study and "00081030" not in study  # not asked for


def test_series_and_instance_results(samples_server, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    study_uid = sources.study_of("ACC-4001")
    series = httpx.get(f"{samples_server}/studies/{study_uid}/series").json()
    assert [s["00200011"]["Value"][0] for s in series] == [2, 3]  # SeriesNumber order
    first = series[0]
    series_uid = first["0020000E"]["Value"][0]
    assert first["00201209"] == {"vr": "IS", "Value": [len(sources.series[series_uid])]}
    assert first["0008103E"] == {"vr": "LO", "Value": ["Head 5.0 H30s"]}
    assert first["0020000D"]["Value"] == [study_uid]
    assert "00100010" not in first  # study attributes only when the path names no study
    assert "00100010" in httpx.get(f"{samples_server}/series", params={"limit": 1}).json()[0]
    instances = httpx.get(f"{samples_server}/studies/{study_uid}/series/{series_uid}/instances")
    numbers = [i["00200013"]["Value"][0] for i in instances.json()]
    assert numbers == sorted(numbers) and len(numbers) == len(sources.series[series_uid])
    instance = instances.json()[0]
    source = sources.instances[instance["00080018"]["Value"][0]][0]
    assert instance["00280010"] == {"vr": "US", "Value": [source.Rows]}
    assert instance["00280011"] == {"vr": "US", "Value": [source.Columns]}
    assert instance["00280100"] == {"vr": "US", "Value": [source.BitsAllocated]}
    assert instance["00081190"]["Value"] == [
        f"{samples_server}/studies/{study_uid}/series/{series_uid}"
        f"/instances/{source.SOPInstanceUID}"
    ]
    multiframe = httpx.get(f"{samples_server}/instances", params={"Modality": "US"}).json()
    assert max(i["00280008"]["Value"][0] for i in multiframe if "00280008" in i) > 1


def test_includefield_by_keyword_tag_list_repetition_and_all(samples_server):
    base = f"{samples_server}/studies?AccessionNumber=ACC-1001"
    by_keyword = httpx.get(f"{base}&includefield=StudyDescription").json()[0]
    by_tags = httpx.get(f"{base}&includefield=00081030,00080080&includefield=PatientAge").json()
    assert by_keyword["00081030"] == {"vr": "LO", "Value": ["CT Thorax/Abdomen mit KM"]}
    assert by_tags[0]["00081030"] == by_keyword["00081030"]
    assert by_tags[0]["00101010"]["Value"]  # PatientAge: a study-level attribute
    assert "00080080" not in by_tags[0]  # InstitutionName is a series attribute
    everything = httpx.get(f"{base}&includefield=all").json()[0]
    assert {"00081030", "00101010", "00080020", "00201208"} <= everything.keys()
    assert "0008103E" not in everything


def test_paging_has_no_gaps_or_duplicates_and_follows_the_order(samples_server, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    pages, offset = [], 0
    while True:
        response = httpx.get(
            f"{samples_server}/studies",
            params={"limit": 4, "offset": offset},
            headers={"Prefer": "count=exact"},
        )
        assert int(response.headers["x-total-count"]) == len(sources.studies)
        if not response.json():
            break
        pages += response.json()
        offset += 4
    uids = [study["0020000D"]["Value"][0] for study in pages]
    assert sorted(uids) == sorted(sources.studies)
    dates = [_indexed_date(study) for study in pages]
    known = [date for date in dates if date]
    assert known == sorted(known)
    unknown = [""] * (len(dates) - len(known))
    assert dates in (unknown + known, known + unknown)  # where NULL sorts depends on the database
    newest = httpx.get(f"{samples_server}/studies", params={"orderby": "-StudyDate,PatientName"})
    known = [date for date in map(_indexed_date, newest.json()) if date]
    assert known == sorted(known, reverse=True)
    by_issuer = httpx.get(
        f"{samples_server}/series", params={"orderby": "IssuerOfPatientID,-PatientName"}
    )
    assert by_issuer.status_code == 200 and len(by_issuer.json()) == len(sources.series)


def _indexed_date(study: dict) -> str:
    """StudyDate as the index orders it: retired ACR-NEMA dates ('1997.04.24') are unknown."""
    value = study["00080020"].get("Value", [""])[0]
    return value if value.isdigit() else ""


def test_empty_result_is_an_empty_array(samples_server):
    response = httpx.get(f"{samples_server}/studies", params={"PatientID": "nobody"})
    assert (response.status_code, response.json(), response.headers["x-total-count"]) == (
        200,
        [],
        "0",
    )
    assert httpx.get(f"{samples_server}/studies/1.2.3/series").json() == []


@pytest.mark.parametrize(
    "query",
    [
        "StudyDate=2024",
        "StudyDate=20241301",
        "StudyDate=2024*",
        "StudyTime=25",
        "StudyDate=20240101-20240202-20240303",
        "limit=-1",
        "limit=ten",
        "offset=1.5",
        "offset=99999999999",
        "fuzzymatching=maybe",
        "includefield=NoSuchAttribute",
        "includefield=" + ",".join(["PatientAge"] * 201),
        "StudyInstanceUID=1.2.abc",
        "StudyInstanceUID=1.2.3*",
        "SeriesNumber=two",
        "PatientName=" + "x" * 1025,
        "PatientName=a%00b",
        "orderby=StudyDescriptionX",
        "orderby=SeriesNumber",
        "Modality=CT%5C",
        "limit=1&limit=2",
        "orderby=ModalitiesInStudy",
        "orderby=PatientAge",
        "AccessionNumber=" + "%5C".join(["a"] * 60) + "&AccessionNumber=" + "%5C".join(["b"] * 41),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(samples_server, query):
    response = httpx.get(f"{samples_server}/studies?{query}")
    assert response.status_code == 400, response.text
    assert response.text.startswith(query.split("=")[0])


def test_an_empty_value_returns_an_attribute_that_is_not_a_matching_key(samples_server):
    response = httpx.get(
        f"{samples_server}/studies", params={"AccessionNumber": "ACC-1001", "PatientAge": ""}
    )
    assert response.status_code == 200, response.text
    assert response.json()[0]["00101010"]["Value"]


def test_bad_uid_in_the_path_is_a_400(samples_server):
    response = httpx.get(f"{samples_server}/studies/not-a-uid/series")
    assert response.status_code == 400
    assert "StudyInstanceUID" in response.text


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/dicom+json", 200),
        ("application/json", 200),
        ("*/*", 200),
        ("application/*", 200),
        ("text/html, */*;q=0.8", 200),
        ("image/png", 406),
        ('multipart/related; type="application/dicom+xml"', 406),
        ("application/dicom+json;q=0, image/png", 406),
    ],
)
def test_accept_negotiation(samples_server, accept, status):
    response = httpx.get(f"{samples_server}/studies?limit=1", headers={"Accept": accept})
    assert response.status_code == status
    if status == 200:
        assert response.headers["content-type"] == "application/dicom+json"
