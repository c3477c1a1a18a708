"""The conformance description: in step with the routes, the committed docs/conformance.md and
the running server (every resource it lists answers on the sample data)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from dicomweb_proxy.http import conformance
from dicomweb_proxy.http.app import dicomweb_routes

from .sample_data import ImportedSamples

pytestmark = pytest.mark.parametrize("imported_samples", ["sqlite"], indirect=True)

DOC = Path(__file__).resolve().parents[1] / "docs" / "conformance.md"
WADL_NS = "{http://wadl.dev.java.net/2009/02}"


def test_committed_doc_is_generated_from_the_description(imported_samples: ImportedSamples):
    assert DOC.read_text(encoding="utf-8") == conformance.markdown(), (
        "docs/conformance.md is out of date: "
        "run .venv/bin/python -m dicomweb_proxy.http.conformance > docs/conformance.md"
    )


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def test_every_route_is_described_and_every_description_is_a_route(
    imported_samples: ImportedSamples,
):
    routes: dict[str, set[str]] = {}
    for route in dicomweb_routes():
        methods = set(route.methods or ()) - {"OPTIONS"}
        if methods:
            routes.setdefault(_template(route.path), set()).update(methods)
    described = {
        resource.path: set(resource.methods) - {"OPTIONS"} for resource in conformance.RESOURCES
    }
    assert routes == described


def _sample_urls(base: str) -> dict[str, str]:
    """A real URL for each resource path of the description, from the sample data."""
    http = httpx.Client(timeout=30)
    study_answer = http.get(f"{base}/studies", params={"ModalitiesInStudy": "CT"}).json()
    study = study_answer[0]["0020000D"]["Value"][0]
    instance = http.get(f"{base}/studies/{study}/instances", params={"limit": 1}).json()[0]
    series, sop = instance["0020000E"]["Value"][0], instance["00080018"]["Value"][0]
    metadata = http.get(f"{base}/studies/{study}/series/{series}/instances/{sop}/metadata").json()
    bulk = next(
        element["BulkDataURI"]
        for element in metadata[0].values()
        if isinstance(element, dict) and "BulkDataURI" in element
    )
    bulk_path = bulk.split(f"/instances/{sop}/bulk/", 1)[1]
    values = {"study": study, "series": series, "instance": sop, "frames": "1", "path": bulk_path}
    return {
        resource.path: base + resource.path.format(**values) for resource in conformance.RESOURCES
    }


def test_every_listed_resource_answers(samples_server: str):
    urls = _sample_urls(samples_server)
    for resource in conformance.RESOURCES:
        url = urls[resource.path]
        for method in resource.methods:
            response = httpx.request(method, url, timeout=60)
            assert response.status_code in (200, 206), (method, url, response.status_code)
            if method == "OPTIONS":
                continue
            media_type = response.headers["content-type"].split(";")[0]
            offered = {m.split(";")[0] for m in resource.media_types}
            assert media_type in offered, (url, response.headers["content-type"])
        # OPTIONS on the base URL (the front page's) describes the whole service (PS3.18 8.9)
        if resource.path not in ("/capabilities", "/"):
            options = httpx.options(url, headers={"Accept": conformance.JSON})
            assert options.status_code == 200, (url, options.text)
            assert set(options.headers["allow"].split(", ")) == {*resource.methods, "OPTIONS"}
            (described,) = options.json()["resources"]
            assert described["path"] == resource.path


def test_capabilities_as_wadl_and_json_say_the_same(samples_server: str):
    wadl = httpx.request("OPTIONS", samples_server)
    assert wadl.status_code == 200
    assert wadl.headers["content-type"] == conformance.WADL
    root = ET.fromstring(wadl.content)
    (resources,) = root.iter(f"{WADL_NS}resources")
    assert resources.get("base") == samples_server + "/"
    wadl_paths = ["/" + element.get("path") for element in resources.iter(f"{WADL_NS}resource")]
    document = httpx.get(
        f"{samples_server}/capabilities", params={"accept": conformance.JSON}
    ).json()
    assert wadl_paths == [resource["path"] for resource in document["resources"]]
    assert wadl_paths == [resource.path for resource in conformance.RESOURCES]
    assert document["resources"][0]["url"] == f"{samples_server}/studies"
    assert "PatientName" in document["matchingKeys"]["patient"]
    syntaxes = {syntax["uid"]: syntax for syntax in document["transferSyntaxes"]}
    assert syntaxes["1.2.840.10008.1.2.4.202"]["stored"]
    assert syntaxes["1.2.840.10008.1.2.1"]["produced"]
    assert document["mediaTypeAliases"]["image/jhc"] == "image/jphc"
    refused = httpx.get(f"{samples_server}/capabilities", headers={"Accept": "image/png"})
    assert refused.status_code == 406


def test_described_keys_are_accepted_by_the_server(samples_server: str):
    for level, keys in conformance.matching_keys().items():
        for key in keys:
            response = httpx.get(f"{samples_server}/studies", params={key: "*", "limit": 1})
            assert response.status_code == 200, (level, key, response.text)
