"""QIDO-RS as a real client library uses it: dicomweb-client's search_for_* on every database."""

from __future__ import annotations

import pytest
from dicomweb_client.api import DICOMwebClient

from .qido_expected import both, eq, expected, fuzzy, pn, read_sources, text


@pytest.fixture
def client(samples_server) -> DICOMwebClient:
    return DICOMwebClient(url=samples_server)


def _uids(results: list[dict], tag: str) -> set[str]:
    return {result[tag]["Value"][0] for result in results}


def test_search_for_studies_with_filters_and_fuzzy_matching(client, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    studies = client.search_for_studies(search_filters={"PatientName": "nuñez*"})
    assert _uids(studies, "0020000D") == expected(sources.studies, pn("Nuñez*")).matches
    fuzzy_match = client.search_for_studies(
        fuzzymatching=True, search_filters={"PatientName": "ås"}
    )
    assert _uids(fuzzy_match, "0020000D") == expected(sources.studies, fuzzy("ås")).matches
    by_modality = client.search_for_studies(search_filters={"ModalitiesInStudy": "US"})
    want = expected(
        sources.studies, eq("Modality", "US"), any_of=lambda uid: sources.series_of(uid).values()
    )
    assert _uids(by_modality, "0020000D") == want.matches


def test_search_for_series_and_instances(client, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    study_uid = sources.study_of("ACC-2001")
    series = client.search_for_series(study_uid, search_filters={"Modality": "MR"})
    assert _uids(series, "0020000E") == set(sources.series_of(study_uid))
    t2 = next(s for s in series if s["00200011"]["Value"] == [4])
    series_uid = t2["0020000E"]["Value"][0]
    instances = client.search_for_instances(study_uid, series_uid)
    assert _uids(instances, "00080018") == {ds.SOPInstanceUID for ds in sources.series[series_uid]}
    everywhere = client.search_for_instances(
        search_filters={"PatientName": "Øvrebø*", "InstanceNumber": 2}
    )
    want = expected(sources.instances, both(pn("Øvrebø*"), eq("InstanceNumber", "2")))
    assert _uids(everywhere, "00080018") == want.matches


def test_fields_limit_and_offset(client, imported_samples):
    sources = read_sources(tuple(imported_samples.files))
    first = client.search_for_studies(limit=5, fields=["StudyDescription", "00101010"])
    assert len(first) == 5
    for study in first:  # an includefield is returned when the study has a value for it
        files = sources.studies[study["0020000D"]["Value"][0]]
        assert ("00081030" in study) == bool(text(files[0], "StudyDescription"))
    rest = client.search_for_studies(offset=5)
    assert len(first) + len(rest) == len(sources.studies)
    assert not _uids(first, "0020000D") & _uids(rest, "0020000D")
    everything = client.search_for_studies(get_remaining=True, limit=7)
    assert _uids(everything, "0020000D") == set(sources.studies)
