"""A remembered state is reused only for the very bytes it was encoded to; anything else decodes."""

from __future__ import annotations

from agents.decoded_states import DecodedStates


def test_only_the_written_bytes_object_gives_the_remembered_state_back() -> None:
    decoded: list[bytes | None] = []

    def decode(raw: bytes | None) -> object:
        decoded.append(raw)
        return ("decoded", raw)

    states = DecodedStates(decode)
    written = b'{"q":1}'
    state = object()
    states.remember(b"c1", written, state)
    assert states.read(b"c1", written) is state and decoded == []
    recovered = bytes(bytearray(written))  # equal content, another object: e.g. from a recovery
    assert states.read(b"c1", recovered) == ("decoded", recovered)
    assert states.read(b"c1", None) == ("decoded", None)  # erased or never written
    states.forget(b"c1")
    assert states.read(b"c1", written) == ("decoded", written)


def test_the_oldest_written_key_is_dropped_past_the_limit() -> None:
    states = DecodedStates(lambda raw: "decoded", limit=2)
    raws = {key: key * 3 for key in (b"a", b"b", b"c")}
    states.remember(b"a", raws[b"a"], "A")
    states.remember(b"b", raws[b"b"], "B")
    states.remember(b"a", raws[b"a"], "A")  # written again: now the newest
    states.remember(b"c", raws[b"c"], "C")
    assert [states.read(key, raw) for key, raw in raws.items()] == ["A", "decoded", "C"]
    states.clear()
    assert states.read(b"a", raws[b"a"]) == "decoded"
