"""QIDO-RS against the real server on SQLite, PostgreSQL and MariaDB: every result set equals
the one worked out from the source files (tests/qido_expected.py), whatever the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx
import pytest
from pydicom.dataset import Dataset

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


def _in(low: str, high: str) -> Callable[[Dataset], bool]:
    """StudyDate + StudyTime within [low, high] (ISO date-times)."""

    def check(ds: Dataset) -> bool:
        day, clock = text(ds, "StudyDate"), text(ds, "StudyTime").split(".")[0].ljust(6, "0")
        if not day or not clock.isdigit():
            return False
        when = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
        return datetime.fromisoformat(low) <= when <= datetime.fromisoformat(high)

    return check


S, SE, I = "/studies", "/series", "/instances"  # noqa: E741
# (path, parameters, predicate on one source file, whether a study needs one matching series)
CASES = [
    (S, {}, always, False),
    (S, {"PatientName": "Müller^Jürgen"}, eq("PatientName", "Müller^Jürgen"), False),
    (S, {"PatientName": "müller^JÜRGEN"}, pn("Müller^Jürgen"), False),
    (S, {"PatientName": "*ü*"}, pn("*ü*"), False),
    (S, {"PatientName": "Ö?t*"}, pn("Ö?t*"), False),
    (S, {"PatientName": "山田^太郎"}, pn("山田^太郎"), False),
    (S, {"PatientName": "yam", "fuzzymatching": "true"}, fuzzy("yam"), False),
    (S, {"PatientName": "jos", "fuzzymatching": "true"}, fuzzy("jos"), False),
    (S, {"PatientName": "Nuñez^José\\Öztürk*"}, either(pn("Nuñez^José"), pn("Öztürk*")), False),
    (S, {"ReferringPhysicianName": "*weiß*"}, pn("*weiß*", "ReferringPhysicianName"), False),
    (S, {"PatientID": "PAT-003"}, eq("PatientID", "PAT-003"), False),
    (S, {"00100020": "PAT-003"}, eq("PatientID", "PAT-003"), False),
    (S, {"PatientSex": "F"}, eq("PatientSex", "F"), False),
    (S, {"IssuerOfPatientID": "KLINIKUM-SUED"}, eq("IssuerOfPatientID", "KLINIKUM-SUED"), False),
    (SE, {"IssuerOfPatientID": "TOKYO-GH"}, eq("IssuerOfPatientID", "TOKYO-GH"), False),
    (S, {"AccessionNumber": "ACC-1001"}, eq("AccessionNumber", "ACC-1001"), False),
    (S, {"StudyDescription": "CT*"}, like("StudyDescription", "CT*"), False),
    (S, {"StudyDate": "20240301-20240430"}, between("StudyDate", "20240301", "20240430"), False),
    (S, {"StudyDate": "-20050101"}, between("StudyDate", "0", "20050101"), False),
    (S, {"StudyDate": "20240501-"}, between("StudyDate", "20240501", "99999999"), False),
    (S, {"StudyDate": "20240304"}, eq("StudyDate", "20240304"), False),
    (
        S,
        {"StudyDate": "20240311-20240312", "StudyTime": "2300-0100"},
        _in("2024-03-11 23:00", "2024-03-12 01:00:59.999999"),
        False,
    ),
    (S, {"StudyTime": "08-1000"}, between("StudyTime", "080000", "100059"), False),
    (S, {"ModalitiesInStudy": "MR"}, eq("Modality", "MR"), True),
    (S, {"ModalitiesInStudy": "CT,MR"}, either(eq("Modality", "CT"), eq("Modality", "MR")), True),
    (S, {"Modality": "SR"}, eq("Modality", "SR"), True),
    (S, {"PatientName": "%"}, eq("PatientName", "%"), False),
    (S, {"PatientName": "_*"}, like("PatientName", "_*"), False),
    (S, {"AccessionNumber": "ACC-100_"}, eq("AccessionNumber", "ACC-100_"), False),
    (S, {"StudyDescription": "*%*"}, like("StudyDescription", "*%*"), False),
    (S, {"PatientName": "*'; DROP TABLE study; --*"}, never, False),
    (S, {"PatientID": "x' OR '1'='1"}, never, False),
    (S, {"PatientID": 'x" OR 1=1; SELECT * FROM patient --'}, never, False),
    (SE, {"Modality": "CT"}, eq("Modality", "CT"), False),
    (SE, {"SeriesNumber": "2"}, eq("SeriesNumber", "2"), False),
    (SE, {"SeriesDescription": "*axial*"}, like("SeriesDescription", "*axial*"), False),
    (
        SE,
        {"PatientName": "Yamada*", "BodyPartExamined": "HEAD"},
        both(pn("Yamada*"), eq("BodyPartExamined", "HEAD")),
        False,
    ),
    ("/studies/{ACC-2001}/series", {}, always, False),
    ("/studies/{ACC-3001}/series", {"Modality": "US"}, eq("Modality", "US"), False),
    (I, {"SOPClassUID": CT_IMAGE}, eq("SOPClassUID", CT_IMAGE), False),
    (I, {"Modality": "US"}, eq("Modality", "US"), False),
    (
        I,
        {"InstanceNumber": "3", "PatientName": "*ü*"},
        both(eq("InstanceNumber", "3"), pn("*ü*")),
        False,
    ),
    ("/studies/{ACC-2001}/instances", {"Rows": "256"}, eq("Rows", "256"), False),
    ("/studies/{ACC-4001}/series/{ACC-4001:3}/instances", {}, always, False),
]


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


@pytest.mark.parametrize(
    ("path", "parameters", "predicate", "in_any_series"),
    CASES,
    ids=[f"{path} {parameters}" for path, parameters, _, _ in CASES],
)
def test_search_finds_what_the_source_files_hold(
    samples_server, imported_samples, path, parameters, predicate, in_any_series
):
    sources = read_sources(tuple(imported_samples.files))
    url, entities = _resolve(path, sources)
    response = httpx.get(samples_server + url, params=parameters)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    tag = UID_TAG[url.rsplit("/", 1)[-1]]
    found = [dataset[tag]["Value"][0] for dataset in response.json()]
    assert len(found) == len(set(found)) == int(response.headers["x-total-count"])
    any_of = (lambda uid: sources.series_of(uid).values()) if in_any_series else None
    want = expected(entities, predicate, any_of=any_of)
    assert set(found) - want.unsure == want.matches
    assert len(want.unsure) <= len(entities) // 4  # the comparison still covers most entities


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
        response = httpx.get(f"{samples_server}/studies", params={"limit": 4, "offset": offset})
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
        "NoSuchAttribute=1",
        "PatientNam=Smith",
        "includefield=NoSuchAttribute",
        "includefield=" + ",".join(["PatientAge"] * 201),
        "StudyInstanceUID=1.2.abc",
        "StudyInstanceUID=1.2.3*",
        "SeriesNumber=two",
        "PatientName=" + "x" * 1025,
        "PatientName=a%00b",
        "PatientComments=x",
        "orderby=StudyDescriptionX",
        "orderby=SeriesNumber",
        "ReferencedStudySequence=x",
        "RequestAttributesSequence.ScheduledProcedureStepID=1",
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(samples_server, query):
    response = httpx.get(f"{samples_server}/studies?{query}")
    assert response.status_code == 400, response.text
    assert response.text.startswith(query.split("=")[0].split(".")[0][:11])


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
