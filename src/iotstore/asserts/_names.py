"""snapd's hyphenated-name regexps, checked in linear time.

snapd validates names with Go regexps such as ``^[a-z](?:-?[a-z0-9])*$`` and
``^(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*$``. Go's RE2 runs them in linear time;
Python's backtracking ``re`` runs the second form in exponential time on a
near-miss such as ``"a" * 40 + "!"`` (snapd's naming/validate.go warns about
exactly this). Header values are checked while decoding, before any
signature is verified, so that would let anyone stall a decoder.

Every such regexp in snapd describes the same kind of language: a non-empty
run of allowed characters and hyphens that starts with one of a given set,
does not end with a hyphen, has no two hyphens in a row and (for some) holds
at least one lower-case letter. :class:`NameRule` checks exactly that with a
single-class regexp and plain string tests, none of which can backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["NameRule"]


@dataclass(frozen=True, slots=True)
class NameRule:
    """A hyphenated-name rule with ``re.Pattern``'s ``fullmatch`` interface.

    ``pattern`` is snapd's regexp (unanchored), kept for reference and for the
    tests that prove both accept the same strings. ``chars`` is a regexp of
    the form ``[first][rest]*``; ``needs``, when given, must occur somewhere.
    """

    pattern: str
    chars: str
    needs: re.Pattern[str] | None = None
    _chars: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_chars", re.compile(self.chars))

    def fullmatch(self, string: str, /) -> bool:
        """Whether snapd's regexp accepts ``string`` as a whole."""
        return (
            self._chars.fullmatch(string) is not None
            and string[-1] != "-"
            and "--" not in string
            and (self.needs is None or self.needs.search(string) is not None)
        )
