"""Settings, read from command-line flags, environment variables and a config file.

Precedence, highest first: command-line flag, environment variable, config file (TOML), default.
Each setting has one ``DICOMWEB_PROXY_<NAME>`` variable; ``PORT``, ``CACHE_ROOT``, ``DB_SECRET_ARN``
(as the reference AHI proxy does), ``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_MEDICAL_IMAGING``
(as boto3 does) are also read, below their ``DICOMWEB_PROXY_`` names.
"""

from __future__ import annotations

import dataclasses
import ipaddress
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
    #: Where image sets live: "local" (a folder under data_dir) or "ahi" (AWS HealthImaging).
    store: str = "local"
    aws_region: str = ""
    #: Another AHI endpoint (an emulator, a VPC endpoint); empty for AWS's own.
    ahi_endpoint_url: str = ""
    #: Secrets Manager secret holding the index database's host, port, username, password, dbname.
    db_secret_arn: str = ""
    #: Disk cache of AHI frames under cache_dir, in MiB (0: none); filled ahead of viewers.
    frame_cache_mb: int = 10240
    #: The OHIF viewer's files (an @ohif/app dist/ folder) served at /viewer; None: ./viewer.
    viewer_dir: Path | None = None
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
            env[ENV_PREFIX + name.upper()] = str(value)
        return env


_FIELDS = [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources by precedence and validate the result."""
    environ = os.environ if environ is None else environ
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
    for name, value in (flags or {}).items():
        if value is not None:
            raw[name] = (value, f"--{name.replace('_', '-')}")
    values = {name: _convert(name, value, source) for name, (value, source) in raw.items()}
    sources = {name: source for name, (_, source) in raw.items()}
    settings = Settings(**values, sources=sources)
    _validate(settings)
    return settings


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
    kind = Settings.__dataclass_fields__[name].type
    try:
        if "int" in kind:
            return _integer(value)
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


def _integer(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a whole number") from None


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
    if settings.db_secret_arn and settings.database_url:
        fail(
            "db_secret_arn",
            "the index database is given twice: set database_url "
            f"(from {settings.sources.get('database_url')}) or db_secret_arn, not both",
        )
