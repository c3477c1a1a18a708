"""The readers' statement timeout on each database (index/database.py statement_timeout): a
slow read is cut, other errors pass, and the limit ends with the block, so the writers that
use the pooled connection next are not cut; and its setting, query_timeout_s."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dicomweb_proxy.config import ConfigError, load_settings
from dicomweb_proxy.index.database import StatementTimeout, statement_timeout

#: A read that takes minutes (10^9 rows of a cross join; the recursive CTE kept to MariaDB's
#: 1000 iterations); with rows=10, about a second.
SLOW = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT COUNT(*) FROM r a, r b, r c WHERE a.n <= :rows AND a.n + b.n + c.n > 0"
)


def test_a_slow_read_is_cut_and_the_limit_ends_with_the_block(index_engine):
    index_engine.dispose()  # a pool of one: the connection checked out next is the same
    with index_engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        with pytest.raises(StatementTimeout) as cut, statement_timeout(connection, 0.2):
            connection.execute(text(SLOW), {"rows": 1000})
        assert cut.value.seconds == 0.2
        assert isinstance(cut.value.__cause__, DBAPIError)
    with index_engine.connect() as connection:
        assert connection.connection.dbapi_connection is raw  # the same pooled connection
        assert connection.execute(text(SLOW), {"rows": 10}).scalar() == 10**7  # not cut
        with statement_timeout(connection, 0):  # 0: no limit
            assert connection.execute(text(SLOW), {"rows": 10}).scalar() == 10**7


def test_reads_within_the_limit_and_other_errors_are_left_alone(index_engine):
    with index_engine.connect() as connection, statement_timeout(connection, 30):
        assert connection.execute(text("SELECT COUNT(*) FROM study")).scalar() == 0
    with index_engine.connect() as connection:
        with pytest.raises(DBAPIError) as error, statement_timeout(connection, 30):
            connection.execute(text("SELECT no_such_column FROM study"))
        assert not isinstance(error.value, StatementTimeout)


@pytest.mark.parametrize(("value", "seconds"), [("0.5", 0.5), ("0", 0.0), ("45", 45.0)])
def test_query_timeout_s_is_a_number_of_seconds(value, seconds):
    settings = load_settings({}, environ={"DICOMWEB_PROXY_QUERY_TIMEOUT_S": value})
    assert settings.query_timeout_s == seconds
    assert load_settings({}, environ={}).query_timeout_s == 30


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_query_timeout_s_must_be_a_finite_number_of_seconds(value):
    with pytest.raises(ConfigError, match="query_timeout_s"):
        load_settings({}, environ={"DICOMWEB_PROXY_QUERY_TIMEOUT_S": value})
