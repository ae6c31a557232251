"""States as this worker last encoded them, reused while the table holds those bytes.

Every batch decodes each customer's state from the table (orjson plus a few hundred small tuples)
and encodes it again for the write: 7% of a worker's time on the bench, and the decode is
wasted whenever the bytes in the table are the ones this worker wrote from the state it still
has. So a staged table (``agents.staged_table``) remembers (bytes, state) per key for the most
recently written keys and takes the state back when the table returns that very bytes object
(``is``, not ``==``): any other write (recovery after a rebalance) is a new object and is
decoded as before. The codec round-trips every state exactly (a property test in
``tests/unit/test_journey_properties.py``), so a reused state is the one decoding would give.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable


class DecodedStates:
    def __init__(self, decode: Callable[[bytes | None], Any], limit: int = 20_000) -> None:
        self._decode = decode
        self.limit = limit
        # key -> (raw, state), oldest written first. An OrderedDict: dropping a plain dict's first
        # key again and again makes finding the next first key walk the deleted slots.
        self._states: OrderedDict[bytes, tuple[bytes, Any]] = OrderedDict()

    def read(self, key: bytes, raw: bytes | None) -> Any:
        """The state ``raw`` (the table's value for ``key``) encodes."""
        known = self._states.get(key)
        if known is not None and known[0] is raw:
            return known[1]
        return self._decode(raw)

    def remember(self, key: bytes, raw: bytes, state: Any) -> None:
        """``raw`` is what ``state`` was encoded to, and is about to be written for ``key``."""
        states = self._states
        states[key] = (raw, state)
        states.move_to_end(key)  # the oldest written is dropped first
        if len(states) > self.limit:
            states.popitem(last=False)

    def forget(self, key: bytes) -> None:
        self._states.pop(key, None)

    def clear(self) -> None:
        self._states.clear()
