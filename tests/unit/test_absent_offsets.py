"""Which offsets a jump in a partition's offsets proves absent (the consumer's gap bookkeeping)."""

from hypothesis import given
from hypothesis import strategies as st

from agents.batching import absent_offsets


def test_a_jump_after_the_last_read_offset_is_absent_but_not_the_record_itself() -> None:
    # compacted or deleted offsets 2..9: the record at 10 is being handed over, not absent
    assert absent_offsets(read=1, accepted_up_to=None, offset=10) == (2, 9)
    assert absent_offsets(read=1, accepted_up_to=1, offset=10) == (2, 9)


def test_consecutive_offsets_prove_nothing_absent() -> None:
    assert absent_offsets(read=5, accepted_up_to=5, offset=6) is None


def test_a_fetch_from_before_a_seek_back_proves_nothing_absent() -> None:
    """The fault suite's restarted worker: records 2..255 handed over, Faust's recovery seeks back
    to the committed offset 1, then a fetch made before the seek brings record 256."""
    assert absent_offsets(read=1, accepted_up_to=255, offset=256) is None


def test_only_offsets_beyond_what_was_accepted_can_be_absent() -> None:
    assert absent_offsets(read=1, accepted_up_to=255, offset=300) == (256, 299)


@given(read=st.integers(0, 10_000), ahead=st.integers(0, 10_000) | st.none(), jump=st.integers(1, 10_000))
def test_never_an_accepted_offset_nor_the_record(read: int, ahead: int | None, jump: int) -> None:
    accepted_up_to = None if ahead is None else read + ahead
    offset = read + jump
    absent = absent_offsets(read, accepted_up_to, offset)
    if absent is None:
        return
    first, last = absent
    assert read < first <= last < offset
    if accepted_up_to is not None:
        assert first > accepted_up_to
