"""Settings, read from command-line flags, environment variables and a config file.

Precedence, highest first: command-line flag, environment variable, config file (TOML), default.
Each setting has one ``DICOMWEB_PROXY_<NAME>`` variable; ``PORT``, ``CACHE_ROOT``, ``DB_SECRET_ARN``
(as the reference AHI proxy does), ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_MEDICAL_IMAGING``
(as boto3 does) are also read, below their ``DICOMWEB_PROXY_`` names.

The top-level settings describe the default datastore. Further datastores, each served at a base
path of its own, are the ``datastores`` setting (``[datastores.NAME]`` tables, or JSON in
``DICOMWEB_PROXY_DATASTORES``): each inherits what it does not set, except its index
(see docs/datastores.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "DICOMWEB_PROXY_"
#: Variables of the reference AHI proxy, read after ours.
LEGACY_ENV = {
    "port": "PORT",
    "cache_root": "CACHE_ROOT",
    "db_secret_arn": "DB_SECRET_ARN",
    "aws_region": "AWS_DEFAULT_REGION",
    "ahi_endpoint_url": "AWS_ENDPOINT_URL_MEDICAL_IMAGING",
}
SUPPORTED_DATABASES = ("sqlite", "postgresql", "mysql", "mariadb")
STORES = ("local", "ahi")
_AHI_ID = re.compile(r"[0-9a-f]{32}")
_LOCAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The top-level settings' datastore, for --datastore-name and messages; no table may use it.
DEFAULT_DATASTORE = "default"
#: What a [datastores.NAME] table may set; the rest is server-wide and inherited.
DATASTORE_KEYS = (
    "base_path",
    "store",
    "datastore_id",
    "data_dir",
    "database_url",
    "db_secret_arn",
    "aws_region",
    "ahi_endpoint_url",
    "cache_root",
    "frame_cache_mb",
    "keep_original",
)
#: Settings a datastore never inherits: two datastores sharing an index would mix their studies.
_INDEX_KEYS = ("database_url", "db_secret_arn")
#: Where the OHIF viewer is served (http/viewer.py), outside every DICOMweb base path.
VIEWER_PATH = "/viewer"
#: Paths the server keeps for itself, which no base path may take.
RESERVED_PATHS = {VIEWER_PATH: "the viewer"}


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    database_url: str = ""
    host: str = "0.0.0.0"
    port: int = 8080
    base_path: str = "/aetitle"
    workers: int = 2
    datastore_id: str = "local"
    cache_root: Path | None = None
    keep_original: bool = False
    cors_origins: tuple[str, ...] = ()
    public_base_url: str = ""
    #: Peers (IP addresses, networks, or "*") whose Forwarded / X-Forwarded-* headers are believed.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    log_level: str = "info"
    #: Most results one QIDO-RS response holds; larger answers are paged (with a Warning).
    max_page_size: int = 1000
    #: Longest one query of a search may run on the index, in seconds (0: no limit): a longer
    #: search answers 503 and asks to be narrowed. Writers (import, sync) are not limited.
    query_timeout_s: float = 30.0
    #: Where image sets live: "local" (a folder under data_dir) or "ahi" (AWS HealthImaging).
    store: str = "local"
    aws_region: str = ""
    #: Another AHI endpoint (an emulator, a VPC endpoint); empty for AWS's own.
    ahi_endpoint_url: str = ""
    #: Secrets Manager secret holding the index database's host, port, username, password, dbname.
    db_secret_arn: str = ""
    #: Disk cache of AHI frames under cache_dir, in MiB (0: none); filled ahead of viewers.
    frame_cache_mb: int = 10240
    #: Seconds a request's AHI call may spend retrying throttling before the client gets 503
    #: with Retry-After (index sync and the event handler keep the long budget: no client waits).
    ahi_request_retry_s: float = 3.0
    #: The OHIF viewer's files (an @ohif/app dist/ folder) served at /viewer; None: ./viewer.
    viewer_dir: Path | None = None
    #: Threads per worker process for store reads, index queries and codec work (0: one per
    #: core), each its own pool (capacity.py) so one slow subsystem cannot starve the others.
    store_threads: int = 32
    index_threads: int = 8
    codec_threads: int = 0
    #: Memory caches per worker process and datastore, in MiB (retrieve/): image-set documents
    #: and resolved instances, stored frames, transcoded frames, metadata bodies.
    document_cache_mb: int = 64
    frame_memory_cache_mb: int = 64
    transcode_cache_mb: int = 64
    metadata_cache_mb: int = 64
    #: Further datastores: name -> the settings its table sets (converted, DATASTORE_KEYS only).
    datastores: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    #: Where each setting came from ("default", "config file", "environment PORT", "--port").
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def index_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'index.sqlite').resolve()}"

    @property
    def store_root(self) -> Path:
        return self.data_dir / "store"

    @property
    def cache_dir(self) -> Path:
        return self.cache_root or self.data_dir / "cache"

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, to hand them to server worker processes."""
        env = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Mapping):
                value = json.dumps(value, default=str)
            env[ENV_PREFIX + name.upper()] = str(value)
        return env

    def all_datastores(self) -> dict[str, Settings]:
        """Every datastore's resolved and validated settings by name, the default (these
        settings) first."""
        resolved = {DEFAULT_DATASTORE: self}
        for name, own in self.datastores.items():
            resolved[name] = _datastore_settings(self, name, own)
        if len(resolved) > 1:
            _check_apart(resolved)
        return resolved

    def datastore(self, name: str) -> Settings:
        """The settings of the datastore called *name* (``default``: these)."""
        _require_datastore(self.datastores, name)
        return self.all_datastores()[name]


_FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    datastore: str | None = None,
) -> Settings:
    """Merge the sources by precedence and validate the result, every datastore's included.

    With *datastore* (the name of a configured datastore other than the default), the flags that
    are datastore settings set that datastore's own, so a command acting on it (``import
    --datastore-name NAME --keep-original``) changes what it acts on; ``data_dir`` stays the
    server's (further datastores' folders default to folders in it), as ``serve`` reads it."""
    environ = os.environ if environ is None else environ
    flags = dict(flags or {})
    own_flags = {}
    if datastore not in (None, DEFAULT_DATASTORE):
        own_flags = {
            key: flags.pop(key)
            for key in DATASTORE_KEYS
            if key != "data_dir" and flags.get(key) is not None
        }
    raw: dict[str, tuple[Any, str]] = {}
    config_file = config_file or _path_or_none(environ.get(ENV_PREFIX + "CONFIG"))
    if config_file is not None:
        raw.update(_read_config_file(config_file))
    for name in _FIELDS:
        legacy = LEGACY_ENV.get(name)
        if legacy and legacy in environ:
            raw[name] = (environ[legacy], f"environment variable {legacy}")
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            raw[name] = (environ[variable], f"environment variable {variable}")
    for name, value in flags.items():
        if value is not None:
            raw[name] = (value, _flag(name))
    values = {name: _convert(name, value, source) for name, (value, source) in raw.items()}
    sources = {name: source for name, (_, source) in raw.items()}
    tables = values.get("datastores", {})
    for name, own in tables.items():
        sources.update({_table_key(name, key): sources["datastores"] for key in own})
    if datastore is not None:
        _require_datastore(tables, datastore)
    if own_flags:
        values["datastores"] = {**tables, datastore: _with_flags(tables[datastore], own_flags)}
        sources.update({_table_key(datastore, key): _flag(key) for key in own_flags})
    settings = Settings(**values, sources=sources)
    _validate(settings)
    settings.all_datastores()  # resolves and validates the further datastores
    return settings


def _with_flags(own: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    return {**own, **{key: _convert(key, value, _flag(key)) for key, value in flags.items()}}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _table_key(datastore: str, key: str) -> str:
    """The ``sources`` key of a datastore's own setting."""
    return f"datastores.{datastore}.{key}"


def _require_datastore(tables: Mapping[str, Any], name: str) -> None:
    if name != DEFAULT_DATASTORE and name not in tables:
        configured = ", ".join([DEFAULT_DATASTORE, *tables])
        raise ConfigError(
            f"datastore {name!r} is not configured (configured: {configured}); add a "
            f"[datastores.{name}] table to the config file or to DICOMWEB_PROXY_DATASTORES"
        )


def _path_or_none(value: str | None) -> Path | None:
    return Path(value) if value else None


def _read_config_file(path: Path) -> dict[str, tuple[Any, str]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    unknown = sorted(set(document) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(_FIELDS)}"
        )
    return {name: (value, f"config file {path}") for name, value in document.items()}


def _convert(name: str, value: Any, source: str) -> Any:
    if name == "datastores":
        return _datastore_tables(value, source)
    kind = Settings.__dataclass_fields__[name].type
    try:
        if "int" in kind:
            return _integer(value)
        if "float" in kind:
            return _number(value)
        if "bool" in kind:
            return _boolean(value)
        if "Path" in kind:
            return Path(value).expanduser() if value not in ("", None) else None
        if "tuple" in kind:
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(item.strip() for item in items if item.strip())
        return str(value)
    except ValueError as error:
        raise ConfigError(f"setting {name!r} (from {source}): {error}") from None


def _datastore_tables(value: Any, source: str) -> dict[str, dict[str, Any]]:
    """``{name: {key: value}}`` from TOML tables or the JSON of DICOMWEB_PROXY_DATASTORES, each
    value converted as its setting is; names and keys checked."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise ConfigError(f"setting 'datastores' (from {source}): not JSON: {error}") from None
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"setting 'datastores' (from {source}): must map datastore names to their settings, "
            'e.g. {"research": {"store": "local"}}'
        )
    tables = {}
    for name, own in value.items():
        where = f"datastore {name!r} (from {source})"
        if not _LOCAL_ID.fullmatch(name):
            raise ConfigError(f"{where}: a name is 1-64 letters, digits, '-' or '_'")
        if name == DEFAULT_DATASTORE:
            raise ConfigError(
                f"{where}: {DEFAULT_DATASTORE!r} is the top-level settings' datastore; "
                "choose another name"
            )
        if not isinstance(own, Mapping):
            raise ConfigError(f"{where}: must be a table of settings")
        unknown = sorted(set(own) - set(DATASTORE_KEYS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(DATASTORE_KEYS)}"
            )
        try:
            tables[name] = {key: _convert(key, item, source) for key, item in own.items()}
        except ConfigError as error:
            raise ConfigError(f"datastore {name!r}: {error}") from None
    return tables


def _datastore_settings(top: Settings, name: str, own: Mapping[str, Any]) -> Settings:
    """A further datastore's settings: its own, then the top-level ones, except the index
    (its own database, or a SQLite file in its own data folder)."""
    values = {"database_url": "", "db_secret_arn": ""} | dict(own)
    values.setdefault("data_dir", top.data_dir / "datastores" / name)
    values.setdefault("base_path", f"/{name}")
    values["public_base_url"] = _public_base_url(top, values["base_path"])
    sources = {
        key: source
        for key, source in top.sources.items()
        if key not in (*_INDEX_KEYS, "data_dir", "base_path", "datastores")
        and not key.startswith("datastores.")
    }
    table_source = top.sources.get("datastores", "default")
    sources.update({key: top.sources.get(_table_key(name, key), table_source) for key in own})
    settings = dataclasses.replace(top, **values, datastores={}, sources=sources)
    try:
        _validate(settings)
    except ConfigError as error:
        raise ConfigError(f"datastore {name!r}: {error}") from None
    return settings


def _public_base_url(top: Settings, base_path: str) -> str:
    """A further datastore's public URL: the configured one with the default's base path
    replaced by the datastore's."""
    public = top.public_base_url.rstrip("/")
    default_base = top.base_path.rstrip("/")
    if not public:
        return ""
    if not public.endswith(default_base):
        raise ConfigError(
            f"setting 'public_base_url' (from {top.sources.get('public_base_url', 'default')}): "
            f"must end with base_path {top.base_path!r} when several datastores are served, so "
            "each datastore's public URL can be derived from it"
        )
    return public[: len(public) - len(default_base)] + base_path.rstrip("/")


def _check_apart(datastores: Mapping[str, Settings]) -> None:
    """Refuse datastores whose base paths meet (one would hide the other). (Shared indexes are
    refused when they are opened: whether one may be shared depends on its layout.)"""
    paths = [(f"datastore {name!r}", ds.base_path) for name, ds in datastores.items()]
    paths += [(owner, path) for path, owner in RESERVED_PATHS.items()]
    for i, (first, first_path) in enumerate(paths):
        for second, second_path in paths[i + 1 :]:
            if first_path == second_path:
                raise ConfigError(
                    f"{first} and {second} both have base path {first_path!r}; "
                    "give each datastore its own base_path"
                )
            outer, inner = sorted([(first, first_path), (second, second_path)], key=_depth)
            if _nested(outer[1], inner[1]):
                raise ConfigError(
                    f"base path {inner[1]!r} of {inner[0]} lies inside {outer[1]!r} of "
                    f"{outer[0]}; base paths must not nest: give each datastore its own base_path"
                )


def _depth(entry: tuple[str, str]) -> int:
    return len(entry[1].rstrip("/"))


def _nested(outer: str, inner: str) -> bool:
    return outer == "/" or inner.startswith(outer.rstrip("/") + "/")


def index_identity(settings: Settings) -> str:
    """What names one index database, whatever the URL's driver, password or spelling."""
    if settings.db_secret_arn:
        return f"secret {settings.db_secret_arn}"
    url = make_url(settings.index_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        return f"sqlite:///{Path(database).resolve() if database else ''}"
    backend = "mysql" if backend == "mariadb" else backend
    return f"{backend}://{url.host or ''}:{url.port or ''}/{url.database or ''}"


def _integer(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a whole number") from None


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _validate(settings: Settings) -> None:
    def fail(name: str, problem: str) -> None:
        source = settings.sources.get(name, "default")
        raise ConfigError(f"setting {name!r} (from {source}): {problem}")

    if not 0 < settings.port < 65536:
        fail("port", f"{settings.port} is not a TCP port (1-65535)")
    base_path = settings.base_path
    if base_path != "/" and (not base_path.startswith("/") or base_path.endswith("/")):
        fail("base_path", f"{base_path!r} must start with '/' and not end with '/'")
    if settings.workers < 1:
        fail("workers", "must be at least 1")
    if settings.data_dir is None:
        fail("data_dir", "must not be empty")
    elif settings.data_dir.exists() and not settings.data_dir.is_dir():
        fail("data_dir", f"{settings.data_dir} exists and is not a folder")
    if settings.database_url:
        try:
            backend = make_url(settings.database_url).get_backend_name()
        except ArgumentError:
            fail("database_url", f"{settings.database_url!r} is not a database URL")
        else:
            if backend not in SUPPORTED_DATABASES:
                fail("database_url", f"{backend!r} is not one of {', '.join(SUPPORTED_DATABASES)}")
    if settings.max_page_size < 1:
        fail("max_page_size", "must be at least 1")
    if settings.query_timeout_s < 0:
        fail("query_timeout_s", "must be 0 (no limit) or more seconds")
    for name in ("store_threads", "index_threads"):
        if getattr(settings, name) < 1:
            fail(name, "must be at least 1")
    if settings.codec_threads < 0:
        fail("codec_threads", "must be 0 (one per core) or more")
    for name in (
        "document_cache_mb",
        "frame_memory_cache_mb",
        "transcode_cache_mb",
        "metadata_cache_mb",
    ):
        if getattr(settings, name) < 0:
            fail(name, "must be 0 (no cache) or more")
    _validate_store(settings, fail)
    if settings.log_level not in ("critical", "error", "warning", "info", "debug"):
        fail("log_level", "must be one of critical, error, warning, info, debug")
    if settings.public_base_url and not settings.public_base_url.startswith(
        ("http://", "https://")
    ):
        fail("public_base_url", "must start with http:// or https://")
    for item in settings.forwarded_allow_ips:
        try:
            if item != "*":
                ipaddress.ip_network(item, strict=False)
        except ValueError:
            fail("forwarded_allow_ips", f"{item!r} is not an IP address, a network or '*'")
    if settings.viewer_dir is not None and not (settings.viewer_dir / "index.html").is_file():
        fail("viewer_dir", f"{settings.viewer_dir} holds no index.html (an @ohif/app dist/ folder)")


def _validate_store(settings: Settings, fail: Callable[[str, str], None]) -> None:
    if settings.store not in STORES:
        fail("store", f"{settings.store!r} is not one of {', '.join(STORES)}")
    if settings.store == "local" and not _LOCAL_ID.fullmatch(settings.datastore_id):
        # It names a folder under <data-dir>/store: no separators, no '..'.
        fail("datastore_id", f"{settings.datastore_id!r} is not 1-64 letters, digits, '-' or '_'")
    if settings.store == "ahi":
        if not _AHI_ID.fullmatch(settings.datastore_id):
            fail(
                "datastore_id",
                f"{settings.datastore_id!r} is not an AHI datastore id (32 lower-case hex digits)",
            )
        if not settings.aws_region:
            fail("aws_region", "store 'ahi' needs one: --aws-region or AWS_DEFAULT_REGION")
    if settings.ahi_endpoint_url and not settings.ahi_endpoint_url.startswith(
        ("http://", "https://")
    ):
        fail("ahi_endpoint_url", "must start with http:// or https://")
    if settings.frame_cache_mb < 0:
        fail("frame_cache_mb", "must be 0 (no cache) or more")
    if settings.ahi_request_retry_s < 0:
        fail("ahi_request_retry_s", "must be 0 (no retries) or more seconds")
    if settings.db_secret_arn and settings.database_url:
        fail(
            "db_secret_arn",
            "the index database is given twice: set database_url "
            f"(from {settings.sources.get('database_url')}) or db_secret_arn, not both",
        )
