"""Generated blocks of the Markdown pages: ``<!-- KIND:NAME:begin -->`` ... ``<!-- KIND:NAME:end -->``.

The tables of the README and ``docs/`` are written by code, never by hand:
each sits between two such markers, and a generator (the study's
aggregation, the loss benchmark, the speed guard's calibration) replaces
what lies between them with what its ``render(NAME)`` returns.
"""
import re
from typing import Callable, Pattern, Tuple


def block_pattern(kind: str, names: str = r'[\w.,-]+') -> Pattern:
    """The blocks of one ``kind`` whose name matches ``names`` (a regex).

    Groups: 1 the begin marker, ``name``, ``body``, 4 the end marker.
    """
    return re.compile(rf'(<!-- {kind}:(?P<name>{names}):begin -->)(?P<body>.*?)'
                      rf'(<!-- {kind}:(?P=name):end -->)', re.S)


def regenerate_blocks(text: str, pattern: Pattern,
                      render: Callable[[str], str]) -> Tuple[str, int]:
    """``text`` with the body of every block of ``pattern`` replaced by
    ``render(name)`` on lines of its own, and how many blocks there were."""
    return pattern.subn(lambda m: f'{m.group(1)}\n{render(m.group("name"))}\n{m.group(4)}', text)
