"""ClickHouse errors sorted by code: retry, backpressure or dead letter, by the writer and its twin."""

from __future__ import annotations

import random
import struct

import pytest
from clickhouse_driver import errors as ch_errors

from sinks.clickhouse import (
    ClickHouseWriter,
    ErrorClass,
    InMemoryWriter,
    SinkError,
    SinkUnavailable,
    backoff_seconds,
    classify,
)
from touchpoint.localstack import free_port
from touchpoint.settings import ClickHouseTarget


DEAD_LETTER_ROW = {"topic": "t", "partition": 0, "offset": 1, "reason": "r", "step": "s", "detail": "",
                   "key": "", "payload": "", "received_at": 0}


def server_error(code: int) -> ch_errors.ServerException:
    return ch_errors.ServerException("Code: %d. synthetic" % code, code=code)


@pytest.mark.parametrize("exc, expected", [
    (server_error(53), ErrorClass.DEAD_LETTER),        # TYPE_MISMATCH
    (server_error(27), ErrorClass.DEAD_LETTER),        # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    (server_error(321), ErrorClass.DEAD_LETTER),       # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    (ch_errors.TypeMismatchError("client side"), ErrorClass.DEAD_LETTER),
    (struct.error("argument out of range"), ErrorClass.DEAD_LETTER),
    (TypeError("str for UInt64"), ErrorClass.DEAD_LETTER),
    (KeyError("score"), ErrorClass.DEAD_LETTER),
    (server_error(252), ErrorClass.BACKPRESSURE),      # TOO_MANY_PARTS
    (server_error(241), ErrorClass.BACKPRESSURE),      # MEMORY_LIMIT_EXCEEDED
    (server_error(202), ErrorClass.BACKPRESSURE),      # TOO_MANY_SIMULTANEOUS_QUERIES
    (server_error(60), ErrorClass.BACKPRESSURE),       # UNKNOWN_TABLE: a deployment fault, not the rows'
    (server_error(193), ErrorClass.BACKPRESSURE),      # WRONG_PASSWORD
    (ch_errors.NetworkError("Connection refused"), ErrorClass.BACKPRESSURE),
    (ch_errors.SocketTimeoutError("timed out"), ErrorClass.BACKPRESSURE),
    (ConnectionResetError(), ErrorClass.BACKPRESSURE),
    (EOFError(), ErrorClass.BACKPRESSURE),
    (server_error(159), ErrorClass.RETRY),             # TIMEOUT_EXCEEDED
    (server_error(319), ErrorClass.RETRY),             # UNKNOWN_STATUS_OF_INSERT
    (server_error(4242), ErrorClass.RETRY),            # unknown: never dead-lettered
    (RuntimeError("unexpected"), ErrorClass.RETRY),
])
def test_errors_are_sorted_by_code(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected


@pytest.mark.parametrize("exc, raised", [
    (server_error(53), SinkError),
    (server_error(252), SinkUnavailable),
    (server_error(159), SinkUnavailable),
    (ch_errors.NetworkError("down"), SinkUnavailable),
])
def test_twin_translates_driver_errors_like_the_writer(exc: BaseException, raised: type) -> None:
    twin = InMemoryWriter()
    twin.failures.append(exc)
    with pytest.raises(raised):
        twin.insert("dead_letters", [])
    # the failure was one-off: the next insert goes through
    twin.insert("dead_letters", [])
    assert twin.attempts == 2


def test_twin_refuses_poison_rows_and_rows_missing_columns() -> None:
    twin = InMemoryWriter()
    twin.poison = lambda table, row: row.get("key") == "bad"
    with pytest.raises(SinkError):
        twin.insert("dead_letters", [{"key": "bad"}])
    with pytest.raises(SinkError, match="lacks"):
        twin.insert("dead_letters", [{"topic": "t"}])


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_seconds(attempt, 0.5, 5.0, rng) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(5.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling * 0.5 <= delay <= ceiling
    assert max(delays) <= 5.0
    assert len(set(delays)) == len(delays)  # jitter: no two waits alike


def test_a_server_that_is_down_is_backpressure_not_a_rejection() -> None:
    """A real connection refused from a port nothing listens on: the rows must be held, not dropped."""
    target = ClickHouseTarget("127.0.0.1", free_port(), "cx", "default", "")
    retries: list[int] = []
    writer = ClickHouseWriter(target, on_retry=lambda table, exc, attempt: retries.append(attempt))
    with pytest.raises(SinkUnavailable):
        writer.insert("dead_letters", [DEAD_LETTER_ROW])
    assert retries == [1]  # backpressure is not retried inside the writer: the sink waits instead
