"""Staged table writes: visible at once, durable only when applied, newest wins."""

from agents.staged_table import StagedTable


def test_reads_see_staged_writes_before_they_are_durable() -> None:
    table: dict[bytes, bytes] = {b"a": b"1"}
    staged = StagedTable(table)
    apply = staged.stage({b"a": b"2", b"b": b"3"})
    assert staged.get(b"a") == b"2" and staged.get(b"b") == b"3"
    assert table == {b"a": b"1"}
    apply()
    assert table == {b"a": b"2", b"b": b"3"}


def test_an_older_batch_applied_late_does_not_hide_a_newer_staged_value() -> None:
    table: dict[bytes, bytes] = {}
    staged = StagedTable(table)
    first = staged.stage({b"a": b"old"})
    second = staged.stage({b"a": b"new"})
    first()
    assert staged.get(b"a") == b"new"
    second()
    assert table[b"a"] == b"new" and staged.get(b"a") == b"new"


def test_deletes_are_staged_too_and_abandon_drops_what_was_not_stored() -> None:
    table: dict[bytes, bytes] = {b"a": b"1", b"b": b"2"}
    staged = StagedTable(table)
    delete = staged.stage({b"a": None})
    assert staged.get(b"a") is None and dict(staged.items()) == {b"b": b"2"}
    staged.abandon()
    assert staged.get(b"a") == b"1"
    delete()  # a batch stored after all: applying twice or after abandon is harmless
    delete()
    assert table == {b"b": b"2"}
