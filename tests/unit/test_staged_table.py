"""Staged table writes: visible at once, durable only once stored and settled, each key written
once per settle with its newest stored value."""

from __future__ import annotations

import orjson

from agents.staged_table import StagedTable


class _Table(dict):  # type: ignore[type-arg]
    """A table of encoded values that counts its writes."""

    writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def staged_on(table: _Table) -> StagedTable[list[int]]:
    return StagedTable(table, orjson.dumps, lambda raw: None if raw is None else orjson.loads(raw))


def test_reads_see_staged_writes_before_they_are_durable() -> None:
    table = _Table({b"a": b"[1]"})
    staged = staged_on(table)
    stored = staged.stage({b"a": [2], b"b": [3]})
    assert staged.get(b"a") == [2] and staged.get(b"b") == [3]
    stored()
    assert table == {b"a": b"[1]"}  # stored, not settled yet
    assert staged.settle() == 2
    assert table == {b"a": b"[2]", b"b": b"[3]"}
    assert staged.get(b"a") == [2]


def test_a_key_staged_by_several_runs_is_encoded_and_written_once_with_its_newest_value() -> None:
    table = _Table()
    staged = staged_on(table)
    runs = [staged.stage({b"a": [n]}) for n in range(5)]
    for stored in runs:
        stored()
    staged.settle()
    assert table == {b"a": b"[4]"} and table.writes == 1


def test_only_stored_runs_are_settled_and_a_newer_staged_value_stays_visible() -> None:
    table = _Table()
    staged = staged_on(table)
    first = staged.stage({b"a": [1]})
    staged.stage({b"a": [2]})  # a later run whose rows are not stored yet
    first()
    staged.settle()
    assert table == {b"a": b"[1]"}  # durable: only what was stored
    assert staged.get(b"a") == [2]  # reads: the newest


def test_a_settled_value_is_read_back_without_decoding() -> None:
    decoded: list[bytes | None] = []
    table = _Table()
    staged: StagedTable[list[int]] = StagedTable(
        table, orjson.dumps, lambda raw: decoded.append(raw) or (None if raw is None else orjson.loads(raw)))
    decoded.clear()  # the empty value, decoded once when the table is made
    value = [7]
    staged.stage({b"a": value})()
    staged.settle()
    assert staged.get(b"a") is value and decoded == []


def test_deletes_are_staged_too_and_abandon_drops_what_was_not_stored() -> None:
    table = _Table({b"a": b"[1]", b"b": b"[2]", b"c": b"[3]"})
    staged = staged_on(table)
    stored_delete = staged.stage({b"c": None})
    stored_delete()
    unstored_delete = staged.stage({b"a": None})
    assert staged.get(b"a") is None and sorted(staged.keys()) == [b"b"]
    staged.abandon()  # partitions let go: the unstored delete is dropped, the stored one is not
    assert staged.get(b"a") == [1]
    staged.settle()
    assert table == {b"a": b"[1]", b"b": b"[2]"}
    unstored_delete()  # a run stored after all: settling it deletes
    staged.settle()
    staged.settle()  # settling again writes nothing
    assert table == {b"b": b"[2]"}


def test_a_staged_delete_reads_as_a_key_without_a_value() -> None:
    """An identifier's state reads as the empty state, not None, once its deletion is staged."""
    staged: StagedTable[list[int]] = StagedTable(_Table({b"a": b"[1]"}), orjson.dumps,
                                                 lambda raw: [] if raw is None else orjson.loads(raw))
    staged.stage({b"a": None})
    assert staged.get(b"a") == [] and staged.get(b"b") == []
