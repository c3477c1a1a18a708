"""Several datastores behind one server: each base path answers from its own index and store.

The real server (``dicomweb-proxy serve``) with a ``[datastores.NAME]`` table next to the default
datastore: two local ones (the second one's index on each database backend), and a local one next
to an AHI datastore served by the emulator. The command line acts on the datastore it is named.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from sqlalchemy import create_engine, text

from dicomweb_proxy.cli import main
from dicomweb_proxy.config import load_settings
from dicomweb_proxy.ingest.importer import Importer
from dicomweb_proxy.samples import generate_ct_series
from dicomweb_proxy.services import open_datastores

from .ahi_fixtures import DATASTORE, REGION, AhiSource
from .live_server import live_server


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """A small CT study per datastore name, with UIDs of its own."""
    root = tmp_path_factory.mktemp("datastore-studies")
    return {
        name: generate_ct_series(root / name, n_studies=1, slices=2, size=64, seed=seed)
        for name, seed in (("default", 101), ("research", 102))
    }


def study_uid(files: list[Path]) -> str:
    return pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID


def study_uids(base: str) -> set[str]:
    answer = httpx.get(f"{base}/studies", timeout=30)
    assert answer.status_code in (200, 204), answer.text
    return {item["0020000D"]["Value"][0] for item in (answer.json() if answer.content else [])}


def first_frame(base: str, study: str) -> httpx.Response:
    """Frame 1 of the study's first image, found through its WADO-RS metadata."""
    metadata = httpx.get(f"{base}/studies/{study}/metadata", timeout=30)
    assert metadata.status_code == 200, metadata.text
    image = next(item for item in metadata.json() if "00280010" in item)
    series, sop = image["0020000E"]["Value"][0], image["00080018"]["Value"][0]
    path = f"/studies/{study}/series/{series}/instances/{sop}/frames/1"
    return httpx.get(f"{base}{path}", headers={"Accept": "application/octet-stream"}, timeout=30)


def write_config(path: Path, datastores: dict[str, dict[str, str]]) -> Path:
    lines = []
    for name, own in datastores.items():
        lines.append(f"[datastores.{name}]")
        lines += [f'{key} = "{value}"' for key, value in own.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def import_into(config: Path, data_dir: Path, files: dict[str, list[Path]]) -> None:
    """Import *files* (by datastore name) with the real importer, as sample_data.py does."""
    settings = load_settings({"data_dir": data_dir}, environ={}, config_file=config)
    datastores = open_datastores(settings)
    try:
        for name, paths in files.items():
            services = datastores[name]
            report = Importer(services.store, services.index, workers=1).run(paths)
            assert report.ok, report.summary()
    finally:
        for services in datastores.values():
            services.close()


@dataclass
class Server:
    root: str  # http://127.0.0.1:PORT
    data_dir: Path

    def base(self, path: str) -> str:
        return f"{self.root}{path}"


@pytest.fixture
def two_local(tmp_path: Path, studies: dict[str, list[Path]], index_url: str) -> Iterator[Server]:
    """The default datastore (SQLite) and "research" (its index on each backend), one server."""
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "proxy.toml", {"research": {"database_url": index_url}})
    import_into(config, data_dir, studies)
    with live_server(data_dir, "--config", str(config)) as base:
        yield Server(base.removesuffix("/aetitle"), data_dir)


def test_each_base_path_serves_its_own_datastore(two_local: Server, studies):
    default, research = two_local.base("/aetitle"), two_local.base("/research")
    mine = {"default": study_uid(studies["default"]), "research": study_uid(studies["research"])}
    assert study_uids(default) == {mine["default"]}
    assert study_uids(research) == {mine["research"]}
    retrieve_url = httpx.get(f"{research}/studies").json()[0]["00081190"]["Value"][0]
    assert retrieve_url == f"{research}/studies/{mine['research']}"

    for base, study in ((default, mine["default"]), (research, mine["research"])):
        frame = first_frame(base, study)
        assert frame.status_code == 200 and len(frame.content) > 100
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "index": "ok", "store": "ok"}
    assert httpx.get(f"{research}/studies/{mine['default']}/metadata").status_code == 404
    assert httpx.get(f"{default}/studies/{mine['research']}/metadata").status_code == 404
    search = httpx.get(f"{research}/studies", params={"StudyInstanceUID": mine["default"]})
    assert search.status_code in (200, 204) and not (search.content and search.json())

    for base in (default, research):
        capabilities = httpx.options(base)
        assert capabilities.status_code == 200
        assert f'<resources base="{base}/">' in capabilities.text
    front = httpx.get(two_local.root, headers={"Accept": "application/json"}).json()
    listed = [(each["name"], each["url"], each["studies"]) for each in front["datastores"]]
    assert listed == [("default", default, 1), ("research", research, 1)]
    printed = next(two_local.data_dir.glob("server-*.log")).read_text()
    assert f"DICOMweb service at {default} (datastore default)\n" in printed
    assert f"DICOMweb service at {research} (datastore research)\n" in printed


def test_an_ahi_datastore_next_to_a_local_one(
    ahi_source: AhiSource, tmp_path: Path, studies: dict[str, list[Path]]
):
    data_dir = tmp_path / "proxy"
    ahi = {"store": "ahi", "datastore_id": DATASTORE, "aws_region": REGION}
    ahi["ahi_endpoint_url"] = ahi_source.url
    config = write_config(tmp_path / "proxy.toml", {"cloud": ahi})
    import_into(config, data_dir, {"default": studies["default"]})
    sync = ["index", "sync", "--data-dir", str(data_dir), "--config", str(config)]
    assert main([*sync, "--datastore-name", "cloud"]) == 0
    with live_server(data_dir, "--config", str(config)) as default:
        cloud = default.removesuffix("/aetitle") + "/cloud"
        local_study = study_uid(studies["default"])
        assert study_uids(default) == {local_study}
        cloud_studies = study_uids(cloud)
        assert len(cloud_studies) == 5 and local_study not in cloud_studies
        assert httpx.get(f"{cloud}/health").json() == {"status": "ok", "index": "ok", "store": "ok"}
        series = httpx.get(f"{cloud}/series", params={"Modality": "CT"}).json()[0]
        frame = first_frame(cloud, series["0020000D"]["Value"][0])
        assert frame.status_code == 200 and len(frame.content) > 100
        assert first_frame(default, local_study).status_code == 200
        assert httpx.get(f"{cloud}/studies/{local_study}/metadata").status_code == 404
        assert ahi_source.calls()["GetImageFrame"] >= 1


def test_the_command_line_acts_on_the_named_datastore(
    tmp_path: Path, studies: dict[str, list[Path]], capsys: pytest.CaptureFixture[str]
):
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "proxy.toml", {"research": {}})
    common = ["--data-dir", str(data_dir), "--config", str(config)]
    files = [str(path) for path in studies["research"]]
    assert main(["import", *common, "--jobs", "1", "--datastore-name", "research", *files]) == 0
    research_index = data_dir / "datastores" / "research" / "index.sqlite"
    assert study_count(research_index) == 1
    assert not (data_dir / "index.sqlite").exists()  # the default datastore was left alone

    capsys.readouterr()
    assert main(["db", "status", *common, "--datastore-name", "research"]) == 0
    assert f"index sqlite:///{research_index.resolve()}: revision" in capsys.readouterr().out
    assert main(["db", "status", *common]) == 0
    assert f"index sqlite:///{(data_dir / 'index.sqlite').resolve()}:" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exited:
        main(["db", "status", *common, "--datastore-name", "scans"])
    assert exited.value.code == 2
    assert "datastore 'scans' is not configured (configured: default, research)" in (
        capsys.readouterr().err
    )


def study_count(index: Path) -> int:
    engine = create_engine(f"sqlite:///{index}")
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM study")).scalar_one()
    finally:
        engine.dispose()
