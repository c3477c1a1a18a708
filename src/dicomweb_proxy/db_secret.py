"""The index database URL from an AWS Secrets Manager secret (``DB_SECRET_ARN``).

Deployments next to AHI keep the index database's credentials in a secret, as the reference
proxy does: JSON with ``host``, ``port``, ``username``, ``password``, ``dbname`` and optionally
``engine`` (``mysql``, ``mariadb``, ``postgres``, ``aurora-mysql``, ``aurora-postgresql``).
MySQL is assumed without an engine. The secret is read once per process, at start-up.
"""

from __future__ import annotations

from typing import Any

import boto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.engine import URL

from .config import ConfigError, Settings

_REQUIRED = ("host", "username", "password", "dbname")


def index_url(settings: Settings) -> str:
    """The index database URL the settings name: from the secret when one is configured."""
    if not settings.db_secret_arn:
        return settings.index_url
    return database_url_from_secret(read_secret(settings.db_secret_arn, settings.aws_region))


def read_secret(secret_id: str, region: str = "") -> dict[str, Any]:
    """The secret's JSON; its region comes from the ARN, else *region*, else the AWS chain."""
    arn_region = secret_id.split(":")[3] if secret_id.startswith("arn:") else ""
    client = boto3.session.Session().client(
        "secretsmanager", region_name=arn_region or region or None
    )
    try:
        text = client.get_secret_value(SecretId=secret_id)["SecretString"]
        return orjson.loads(text)
    except ClientError as error:
        problem = f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
    except (BotoCoreError, KeyError, orjson.JSONDecodeError) as error:
        problem = f"{error.__class__.__name__}: {error}"
    raise ConfigError(f"setting 'db_secret_arn': cannot read secret {secret_id}: {problem}")


def database_url_from_secret(secret: dict[str, Any]) -> str:
    missing = [key for key in _REQUIRED if not secret.get(key)]
    if missing:
        raise ConfigError(
            f"setting 'db_secret_arn': the secret lacks {', '.join(missing)} "
            f"(it needs {', '.join(_REQUIRED)}, and may have port and engine)"
        )
    postgres = "postgres" in str(secret.get("engine", "")).lower()
    url = URL.create(
        "postgresql+psycopg" if postgres else "mysql+pymysql",
        username=secret["username"],
        password=secret["password"],
        host=secret["host"],
        port=int(secret.get("port") or (5432 if postgres else 3306)),
        database=secret["dbname"],
    )
    return url.render_as_string(hide_password=False)
