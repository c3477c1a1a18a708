"""The ``dicomweb-proxy`` command: serve, import, db and demo."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from .config import ConfigError, Settings, load_settings
from .stores.base import StoreError

if TYPE_CHECKING:
    from .services import Services

DESCRIPTION = """\
A DICOMweb server (QIDO-RS, WADO-RS) for image-set stores: a local folder kept the way AWS
HealthImaging keeps data, or an AHI datastore. Settings come from flags, then DICOMWEB_PROXY_*
environment variables (PORT and CACHE_ROOT are read too), then a TOML config file (--config or
DICOMWEB_PROXY_CONFIG), then defaults. One server can front several datastores, each at a base path
of its own ([datastores.NAME] tables in the config file, docs/datastores.md).
"""


class _Parser(argparse.ArgumentParser):
    """A bad flag or value costs one line naming it, not the usage block of every option (its
    subcommands' parsers are of this class too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port number (1-65535)") from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("storage")
    group.add_argument(
        "--data-dir",
        type=Path,
        help="folder of the embedded default: SQLite index, local store, caches "
        "(env DICOMWEB_PROXY_DATA_DIR; default ./data)",
    )
    group.add_argument(
        "--database-url",
        help="index database URL, e.g. postgresql+psycopg://user@host/db or "
        "mysql+pymysql://user:pw@host/db (default: SQLite file in the data folder)",
    )
    group.add_argument("--config", type=Path, help="TOML file with settings (same names as flags)")
    group.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    _ahi_options(common)
    return common


def _ahi_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS HealthImaging (docs/ahi.md)")
    group.add_argument(
        "--store", choices=["local", "ahi"], help="where image sets live (default local)"
    )
    group.add_argument(
        "--datastore-id", help="datastore to serve: AHI's 32-hex id with --store ahi"
    )
    group.add_argument("--aws-region", help="AWS region of the datastore (env AWS_DEFAULT_REGION)")
    group.add_argument(
        "--ahi-endpoint-url",
        help="another AHI endpoint, e.g. the emulator (env AWS_ENDPOINT_URL_MEDICAL_IMAGING)",
    )
    group.add_argument(
        "--frame-cache-mb",
        type=int,
        help="disk cache of AHI frames under the cache folder, MiB (default 10240; 0: none)",
    )
    group.add_argument(
        "--db-secret-arn",
        help="Secrets Manager secret with the index database credentials (env DB_SECRET_ARN)",
    )


def _datastore_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--datastore-name",
        metavar="NAME",
        help="act on the datastore configured as [datastores.NAME] (config file or "
        "DICOMWEB_PROXY_DATASTORES) instead of the default one; the storage and AHI flags "
        "then set that datastore's settings, except --data-dir: the server's data folder",
    )


def _server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    group.add_argument("--port", type=_port, help="TCP port (env PORT too; default 8080)")
    group.add_argument(
        "--base-path",
        help="URL prefix of the DICOMweb service (default /aetitle, as the AHI proxy)",
    )
    group.add_argument("--workers", type=int, help="server worker processes (default 2)")
    group.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        help="origin allowed to call the service from a browser; repeat, or '*' for any",
    )
    group.add_argument(
        "--public-base-url",
        help="URL clients reach the service at, when a proxy in front rewrites it "
        "(otherwise taken from the request and X-Forwarded-* headers)",
    )
    group.add_argument(
        "--viewer-dir",
        type=Path,
        help="OHIF viewer files (an @ohif/app dist/ folder) to serve at /viewer "
        "(default ./viewer, where scripts/viewer installs them)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dicomweb-proxy", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()

    serve = commands.add_parser(
        "serve", parents=[common], help="run the DICOMweb server", description=_doc(cmd_serve)
    )
    _server_options(serve)
    serve.set_defaults(handler=cmd_serve)

    importer = commands.add_parser(
        "import",
        parents=[common],
        help="import DICOM files and folders into the store and index",
        description=_doc(cmd_import),
    )
    importer.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="file or folder")
    importer.add_argument(
        "--keep-original",
        action="store_true",
        default=None,
        help="store frames in their source encoding instead of HTJ2K (less CPU, more disk)",
    )
    importer.add_argument("--jobs", type=int, help="parser processes (default: one per core)")
    _datastore_option(importer)
    importer.set_defaults(handler=cmd_import)

    db = commands.add_parser(
        "db",
        parents=[common],
        help="create, upgrade or inspect the index schema",
        description=_doc(cmd_db),
    )
    db.add_argument(
        "action",
        choices=["upgrade", "status"],
        help="upgrade: create the data folder and the schema, or migrate it to this version; "
        "status: print the index URL and its schema revision, changing nothing",
    )
    _datastore_option(db)
    db.set_defaults(handler=cmd_db)

    _index_commands(commands, common)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="create sample studies, import them and serve them",
        description=_doc(cmd_demo),
    )
    _server_options(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def _index_commands(commands, common: argparse.ArgumentParser) -> None:
    index = commands.add_parser(
        "index", help="keep the index equal to the store (AHI sync and events)"
    )
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync",
        parents=[common],
        help="index new and changed image sets, drop deleted ones",
        description=_doc(cmd_index_sync),
    )
    # The datastore is --datastore-id, as everywhere; --datastore, this command's first spelling,
    # still works for the scripts that use it.
    sync.add_argument("--datastore", dest="datastore_id", help=argparse.SUPPRESS)
    _datastore_option(sync)
    sync.set_defaults(handler=cmd_index_sync)
    event = actions.add_parser(
        "event",
        parents=[common],
        help="apply AHI image-set events from a JSON file",
        description=_doc(cmd_index_event),
    )
    event.add_argument("file", type=Path, metavar="FILE.json", help="events file, - for stdin")
    _datastore_option(event)
    event.set_defaults(handler=cmd_index_event)


def _doc(function) -> str:
    return (function.__doc__ or "").strip()


def _settings(args: argparse.Namespace, **overrides) -> Settings:
    """The settings the command acts on: those of the datastore --datastore-name names, else
    the top-level ones (the default datastore's, which also describe the others)."""
    names = Settings.__dataclass_fields__
    flags = {name: value for name, value in vars(args).items() if name in names}
    flags.update(overrides)
    datastore = getattr(args, "datastore_name", None)
    settings = load_settings(flags, config_file=args.config, datastore=datastore)
    return settings.datastore(datastore) if datastore else settings


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the DICOMweb server. Every datastore's index schema is created or upgraded first."""
    settings = _settings(args)
    _upgrade(settings)
    return _run_server(settings)


def _upgrade(settings: Settings) -> None:
    """Create or upgrade every datastore's index, and say what each one serves."""
    from .services import open_datastores

    for name, services in open_datastores(settings, upgrade=True).items():
        try:
            studies = services.reader.counts().studies
            print(f"{_serving(name, services)}: {studies} studies", flush=True)
        finally:
            services.close()


def _serving(name: str, services: Services) -> str:
    """Where a datastore's data comes from, in one line (the index URL without its password)."""
    settings = services.settings
    if settings.store == "ahi":
        store = f"AHI datastore {settings.datastore_id} ({settings.aws_region or 'default region'})"
    else:
        store = f"local store {settings.store_root.resolve()}"
    return (
        f"datastore {name}: data folder {settings.data_dir.resolve()}, "
        f"index {services.index.url.render_as_string()}, {store}"
    )


def _port_in_use(settings: Settings) -> str | None:
    """Why the server cannot listen on its address, before it prints where it answers. (The
    port could still be taken in between; uvicorn then says so.)"""
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as error:
        return (
            f"dicomweb-proxy: cannot listen on {settings.host} port {settings.port}: "
            f"{error.strerror or error}; stop the program using it (another dicomweb-proxy?) "
            "or choose another with --port (env PORT)"
        )
    return None


def _run_server(settings: Settings) -> int:
    import uvicorn

    from .http.viewer import viewer_status

    problem = _port_in_use(settings)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    os.environ.update(settings.to_env())
    base = f"http://{'localhost' if settings.host in ('0.0.0.0', '::') else settings.host}"
    datastores = settings.all_datastores()
    for name, datastore in datastores.items():
        label = f" (datastore {name})" if len(datastores) > 1 else ""
        print(f"DICOMweb service at {base}:{settings.port}{datastore.base_path}{label}", flush=True)
    print(viewer_status(f"{base}:{settings.port}", settings), flush=True)
    uvicorn.run(
        "dicomweb_proxy.http.app:create_app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        # Forwarded / X-Forwarded-* are believed only from forwarded_allow_ips peers, and read by
        # the app (http/urls.py). uvicorn's own proxy handling would replace the peer's address by
        # the X-Forwarded-For one first, and the app could no longer tell who sent the headers.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import DICOM Part 10 files (folders are searched recursively).

    Already imported instances are reported and skipped; files that are not DICOM, are damaged or
    lack Study/Series/SOP Instance UIDs are listed with the reason. Exit status 0 when every file
    was imported or already present, 1 otherwise. Safe while the server runs.
    """
    from .ingest.importer import Importer, find_files, progress_bar
    from .services import open_services

    settings = _settings(args)
    if settings.store == "ahi":
        raise ConfigError(
            "setting 'store' is 'ahi': AHI image sets come from AHI import jobs "
            "(StartDICOMImportJob); import there, then run 'dicomweb-proxy index sync'"
        )
    services = open_services(settings)
    try:
        services.require_writable_index("import")
        files = find_files(args.paths)
        missing = [path for path in args.paths if not path.exists()]
        for path in missing:
            print(f"{path}: no such file or folder", file=sys.stderr)
        importer = Importer(
            services.store,
            services.index,
            keep_original=settings.keep_original,
            workers=args.jobs,
        )
        advance, close = progress_bar(len(files))
        try:
            report = importer.run(files, progress=advance)
        finally:
            close()
    finally:
        services.close()
    for failure in report.failures:
        print(f"{failure.path}: {failure.reason}", file=sys.stderr)
    print(report.summary())
    return 0 if report.ok and not missing else 1


def cmd_db(args: argparse.Namespace) -> int:
    """Create or upgrade the index schema (upgrade), or print its revision (status: reads only,
    and creates no data folder). A database in the companion metadata-index layout is reported
    as such and never changed."""
    from .index.database import schema_revision
    from .services import open_index

    engine, layout = open_index(_settings(args), upgrade=args.action == "upgrade")
    try:
        if layout.writable:
            revision = f"revision {schema_revision(engine) or 'none'}"
        else:
            revision = "metadata-index layout, read only"
    finally:
        engine.dispose()
    print(f"index {engine.url.render_as_string()}: {revision}")
    return 0


def cmd_index_sync(args: argparse.Namespace) -> int:
    """Walk the store's image sets (AHI: SearchImageSets, every page) and make the index equal:
    index new image sets and those whose version changed, remove those the store no longer
    has. Idempotent and safe while the server runs. Exit status 1 if an image set failed."""
    from .ingest.ahi_sync import sync_index
    from .services import open_services

    services = open_services(_settings(args), maintenance=True)
    try:
        services.require_writable_index("sync the index")
        report = sync_index(services.store, services.index)
    finally:
        services.close()
    for image_set_id, reason in report.failures:
        print(f"{image_set_id}: {reason}", file=sys.stderr)
    print(f"datastore {services.store.datastore_id}: {report.summary()}")
    return 0 if not report.failures else 1


def cmd_index_event(args: argparse.Namespace) -> int:
    """Apply AHI image-set events (an EventBridge event, a list of them, or an SQS batch as a
    Lambda receives it) to the index, as the Lambda handler
    dicomweb_proxy.ingest.ahi_events.handler does. Exit status 1 if an event failed."""
    import orjson

    from .ingest.ahi_events import handle_events
    from .services import open_services

    try:
        text = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
        document = orjson.loads(text)
    except (OSError, orjson.JSONDecodeError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 1
    services = open_services(_settings(args), maintenance=True)
    try:
        services.require_writable_index("apply image-set events")
        results = handle_events(document, services.store, services.index)
    finally:
        services.close()
    for result in results:
        print(f"image set {result.image_set_id or '-'}: {result.outcome}")
    return 1 if any(result.failed for result in results) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Create a data folder with synthetic sample studies imported, then serve it.

    The demo allows any browser origin (CORS) so a viewer on another port can use it.
    """
    from .ingest.importer import Importer, find_files
    from .samples import generate_sample_studies
    from .services import create_data_dir, open_services

    settings = _settings(args, cors_origins=args.cors_origins or ["*"])
    create_data_dir(settings)  # before the samples: a mistyped folder is refused, not made
    samples = settings.data_dir / "samples"
    if not samples.exists():
        print(f"writing sample studies to {samples}", flush=True)
        generate_sample_studies(samples)
    services = open_services(settings)
    try:
        services.require_writable_index("import the samples")
        report = Importer(services.store, services.index).run(find_files([samples]))
    finally:
        services.close()
    print(report.summary(), flush=True)
    return _run_server(settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dicomweb_proxy").setLevel(logging.INFO)
    # Invalid values in source files are kept as they are; pydicom's warnings about them are noise.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pydicom")
    try:
        return args.handler(args)
    except ConfigError as error:
        parser.exit(2, f"dicomweb-proxy: configuration error: {error}\n")
    except DBAPIError as error:
        parser.exit(
            1,
            f"dicomweb-proxy: cannot use the index database: {error.orig}\n"
            "Check --database-url (or DICOMWEB_PROXY_DATABASE_URL) and that the server runs.\n",
        )
    except StoreError as error:
        parser.exit(1, f"dicomweb-proxy: the image-set store failed: {error}\n")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
