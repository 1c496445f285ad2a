"""`regex` conditions that cannot hang the server: refused shapes at load, a time budget at match time.

Python's `re` backtracks, and no thread can interrupt it (it holds the GIL and checks only the main thread's
signals). Two guards, with no new dependency:

1. At load, a pattern that repeats a group made only of repeats (`(a+)+`, `(\\w+\\s?)*`, `(x*y?){2,}`) is refused
   with the fix: the classic shape whose matching time doubles with each character.
2. At match time, a search that could still be slow (a pattern with two or more varying quantifiers, such as
   `.*a.*b`, which is O(n³), or `(\\w+\\d)+`; or any pattern on a text over 10,000 characters) runs in a helper
   process with a time budget (`BUDGET`, 0.5 s). Over budget, the process is killed (and started again when next
   needed), the condition counts as not matching, the log says so, and the miss explanation names the pattern.
   Short texts against simple patterns (the usual `^gpt-4o`, `hello.*world`) are searched in-process: one varying
   quantifier on at most 10,000 characters is at worst some 10⁸ steps of the C engine, a few tens of milliseconds.
"""

from __future__ import annotations

import atexit
import json
import logging
import re
import select
import struct
import subprocess
import sys
import threading
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

BUDGET = 0.5  # seconds one search may take in the helper process
INLINE_TEXT = 10_000  # characters a simple pattern is searched on in-process

log = logging.getLogger("mockllm")


class RegexTimeout(Exception):
    """A search ran over its time budget."""


def _variable(op: Any, av: Any) -> bool:
    """A repeat whose count varies (`+`, `*`, `{2,5}`), the kind that backtracks; `\\d{3}` does not."""
    return op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and av[1] > 1 and av[0] != av[1]


def _only_repeats(items: Any) -> bool:
    """Whether a group's body is nothing but varying repeats (`a+`, `\\w+\\s?`): each iteration of an outer
    repeat can then take any share of the text, and a near-miss tries every way to split it."""
    inner = list(items)
    while len(inner) == 1 and inner[0][0] is sre_constants.SUBPATTERN:
        inner = list(inner[0][1][3])
    if not inner:
        return False
    return all(
        _variable(op, av) or (op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and av[0] == 0)
        for op, av in inner
    ) and any(_variable(op, av) for op, av in inner)


def _children(op: Any, av: Any) -> list[Any]:
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
        return [av[2]]
    if op is sre_constants.SUBPATTERN:
        return [av[3]]
    if op is sre_constants.BRANCH:
        return list(av[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [av[1]]
    return []


def _nested(items: Any) -> bool:
    """Whether a varying repeat's body is only varying repeats (`(a+)+`): exponential backtracking."""
    for op, av in items:
        if _variable(op, av) and _only_repeats(av[2]):
            return True
        if any(_nested(child) for child in _children(op, av)):
            return True
    return False


def _count_variable(items: Any) -> int:
    """How many varying repeats and alternations (`(a|aa)+` backtracks like a nested repeat) a pattern holds."""
    return sum(
        _variable(op, av) + (op is sre_constants.BRANCH) + sum(_count_variable(c) for c in _children(op, av))
        for op, av in items
    )


def check_pattern(pattern: str) -> None:
    """Raise ValueError, with the fix, for a pattern whose matching time can grow exponentially."""
    parsed = sre_parse.parse(pattern)
    if _nested(parsed):
        raise ValueError(
            f"regex {pattern!r} repeats a group made only of repeats (like `(a+)+`): on a text that almost "
            f"matches, its matching time doubles with every character. Rewrite it without the nesting (`(a+)+` is "
            f"`a+`, `(\\w+\\s?)*` is `[\\w\\s]*`), or use `contains`"
        )


class _Helper:
    """One helper process running searches, killed and replaced when a search runs over budget."""

    _CODE = (
        "import json, re, struct, sys\n"
        "src, out, cache = sys.stdin.buffer, sys.stdout.buffer, {}\n"
        "while True:\n"
        "    head = src.read(4)\n"
        "    if len(head) < 4: break\n"
        "    pattern, flags, text = json.loads(src.read(struct.unpack('>I', head)[0]))\n"
        "    regex = cache.get((pattern, flags)) or cache.setdefault((pattern, flags), re.compile(pattern, flags))\n"
        "    out.write(b'1' if regex.search(text) else b'0'); out.flush()\n"
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def search(self, regex: re.Pattern[str], text: str, budget: float) -> bool:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                # -I: isolated (no site, no user paths): the helper starts in milliseconds and imports only `re`.
                process = subprocess.Popen(
                    [sys.executable, "-I", "-c", self._CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
                self._process = process
            assert process.stdin is not None
            assert process.stdout is not None
            payload = json.dumps([regex.pattern, regex.flags, text]).encode()
            try:
                process.stdin.write(struct.pack(">I", len(payload)) + payload)
                process.stdin.flush()
            except OSError:  # the helper died (killed from outside): start another next time
                _discard(process)
                self._process = None
                raise RegexTimeout(regex.pattern) from None
            ready, _, _ = select.select([process.stdout], [], [], budget)
            answer = process.stdout.read(1) if ready else b""
            if answer in (b"0", b"1"):
                return answer == b"1"
            _discard(process)
            self._process = None
            raise RegexTimeout(regex.pattern)

    def close(self) -> None:
        """Stop the helper process (the next search starts another)."""
        with self._lock:
            if self._process is not None:
                _discard(self._process)
                self._process = None


def _discard(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


_helper = _Helper()
atexit.register(_helper.close)  # no helper process outlives the server (or a test run)
_simple: dict[str, bool] = {}
# pattern -> the shortest text length it ran over budget on (for the miss explanation)
slow: dict[str, int] = {}


def search(regex: re.Pattern[str], text: str) -> bool:
    """`regex.search(text) is not None`, in bounded time (module docstring); over budget it is False."""
    simple = _simple.get(regex.pattern)
    if simple is None:
        simple = _simple[regex.pattern] = _count_variable(sre_parse.parse(regex.pattern, regex.flags)) <= 1
    if simple and len(text) <= INLINE_TEXT:
        return regex.search(text) is not None
    try:
        return _helper.search(regex, text, BUDGET)
    except RegexTimeout:
        slow[regex.pattern] = min(len(text), slow.get(regex.pattern, len(text)))
        log.warning(
            "regex %r ran over its %gs budget on a %d-character text and counts as not matching; simplify it "
            "(fewer `.*`, anchors, or `contains`)",
            regex.pattern,
            BUDGET,
            len(text),
            extra={"fields": {"event": "regex_timeout", "pattern": regex.pattern}},
        )
        return False


def describe_slow(pattern: str) -> str:
    """A note for the miss explanation when the pattern ran over budget ("" when it never did)."""
    if pattern not in slow:
        return ""
    return f" (gave up after {BUDGET:g}s on a {slow[pattern]}-character text: simplify the pattern)"
