"""AHI settings and the index database URL from Secrets Manager (moto)."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from moto import mock_aws

from dicomweb_proxy.config import ConfigError, load_settings
from dicomweb_proxy.db_secret import index_url
from dicomweb_proxy.services import open_store
from dicomweb_proxy.stores.ahi import MAINTENANCE_RETRY, AhiStore, RetryPolicy
from dicomweb_proxy.stores.cached import CachedStore
from dicomweb_proxy.stores.local import LocalStore

DATASTORE = "0123456789abcdef0123456789abcdef"
AHI = {"store": "ahi", "datastore_id": DATASTORE}


def test_ahi_settings_come_from_flags_and_aws_variables(tmp_path):
    environ = {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_MEDICAL_IMAGING": "http://127.0.0.1:9000",
        "DB_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:index-AbCdEf",
        "DICOMWEB_PROXY_DATASTORE_ID": DATASTORE,
    }
    settings = load_settings({"store": "ahi", "data_dir": tmp_path}, environ=environ)
    assert settings.aws_region == "eu-west-1"
    assert settings.ahi_endpoint_url == "http://127.0.0.1:9000"
    assert settings.db_secret_arn == environ["DB_SECRET_ARN"]
    assert settings.sources["aws_region"] == "environment variable AWS_DEFAULT_REGION"
    ours = {**environ, "DICOMWEB_PROXY_AWS_REGION": "us-west-2"}
    assert load_settings(AHI, environ=ours).aws_region == "us-west-2"
    assert load_settings({**AHI, "aws_region": "ap-south-1"}, environ=ours).aws_region == (
        "ap-south-1"
    )
    assert isinstance(open_store(settings), CachedStore)
    assert isinstance(open_store(settings, maintenance=True), AhiStore)
    uncached = load_settings({**AHI, "data_dir": tmp_path, "frame_cache_mb": 0}, environ=environ)
    assert isinstance(open_store(uncached), AhiStore)
    assert isinstance(open_store(load_settings({"data_dir": tmp_path}, environ={})), LocalStore)


def test_requests_retry_for_their_budget_and_maintenance_for_the_long_one(tmp_path):
    """A client waits for a request's store calls: they give up after ahi_request_retry_s;
    index maintenance (sync, events) keeps the long budget."""
    flags = {**AHI, "data_dir": tmp_path, "aws_region": "us-east-1"}
    settings = load_settings(flags, environ={"DICOMWEB_PROXY_AHI_REQUEST_RETRY_S": "1.5"})
    assert settings.ahi_request_retry_s == 1.5
    uncached = dataclasses.replace(settings, frame_cache_mb=0)
    assert open_store(uncached).retry == RetryPolicy(budget=1.5)
    assert open_store(settings, maintenance=True).retry == MAINTENANCE_RETRY
    assert MAINTENANCE_RETRY.budget > settings.ahi_request_retry_s


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"store": "s3"}, {}, "setting 'store' (from --store): 's3' is not one of local, ahi"),
        (
            {"store": "ahi"},
            {"AWS_DEFAULT_REGION": "us-east-1"},
            "setting 'datastore_id' (from default): 'local' is not an AHI datastore id",
        ),
        (
            {"store": "ahi", "datastore_id": DATASTORE.upper()},
            {"AWS_DEFAULT_REGION": "us-east-1"},
            "is not an AHI datastore id (32 lower-case hex digits)",
        ),
        (AHI, {}, "setting 'aws_region' (from default): store 'ahi' needs one"),
        (
            {**AHI, "aws_region": "us-east-1", "ahi_endpoint_url": "localhost:9000"},
            {},
            "setting 'ahi_endpoint_url' (from --ahi-endpoint-url): must start with http://",
        ),
        (
            {"database_url": "sqlite:///x.sqlite"},
            {"DB_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
            "set database_url (from --database-url) or db_secret_arn, not both",
        ),
        (
            {},
            {"DICOMWEB_PROXY_AHI_REQUEST_RETRY_S": "soon"},
            "setting 'ahi_request_retry_s' (from environment variable "
            "DICOMWEB_PROXY_AHI_REQUEST_RETRY_S): 'soon' is not a number",
        ),
        ({"ahi_request_retry_s": "nan"}, {}, "'nan' is not a finite number"),
        ({"ahi_request_retry_s": -1}, {}, "must be 0 (no retries) or more seconds"),
    ],
)
def test_bad_ahi_settings_are_named(flags, environ, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(flags, environ=environ)
    assert message in str(raised.value)


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-central-1")


def secret_settings(arn: str, tmp_path):
    return load_settings({"db_secret_arn": arn, "data_dir": tmp_path}, environ={})


def test_index_url_from_a_mysql_secret(secrets, tmp_path):
    secret = {
        "host": "index.cluster-x.eu-central-1.rds.amazonaws.com",
        "port": 3306,
        "username": "reader",
        "password": "p@ss:w/rd",
        "dbname": "ahiindex",
    }
    arn = secrets.create_secret(Name="ahi-index", SecretString=json.dumps(secret))["ARN"]
    assert index_url(secret_settings(arn, tmp_path)) == (
        "mysql+pymysql://reader:p%40ss%3Aw%2Frd@"
        "index.cluster-x.eu-central-1.rds.amazonaws.com:3306/ahiindex"
    )


def test_index_url_from_a_postgres_secret_in_the_configured_region(secrets, tmp_path):
    secret = {"engine": "aurora-postgresql", "host": "db", "username": "u", "password": "p"}
    secret["dbname"] = "index"
    secrets.create_secret(Name="pg-index", SecretString=json.dumps(secret))
    settings = load_settings(
        {"db_secret_arn": "pg-index", "aws_region": "eu-central-1", "data_dir": tmp_path},
        environ={},
    )
    assert index_url(settings) == "postgresql+psycopg://u:p@db:5432/index"


def test_unusable_secrets_are_configuration_errors(secrets, tmp_path):
    arn = secrets.create_secret(Name="partial", SecretString='{"host": "db"}')["ARN"]
    with pytest.raises(ConfigError, match="the secret lacks username, password, dbname"):
        index_url(secret_settings(arn, tmp_path))
    missing = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:nope-123456"
    with pytest.raises(ConfigError, match=r"cannot read secret .*ResourceNotFoundException"):
        index_url(secret_settings(missing, tmp_path))
