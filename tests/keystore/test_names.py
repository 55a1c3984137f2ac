"""Key names: a property check of the one naming rule every store applies."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from iotstore.keystore import InvalidKeyName, KeyNotFound, MemoryKeyStore

RULE = re.compile(r"[a-z0-9][a-z0-9._-]*")

names = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="abcz09._-A \n/", max_size=70),
    st.from_regex(RULE, fullmatch=True),
)


@given(names)
def test_every_name_is_either_valid_or_refused_cleanly(name: str) -> None:
    store = MemoryKeyStore()
    valid = RULE.fullmatch(name) is not None and len(name) <= 64
    try:
        store.get(name)
    except KeyNotFound:
        assert valid
    except InvalidKeyName as e:
        assert not valid
        assert str(e).startswith("invalid key name")
