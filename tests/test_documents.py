"""Reading YAML documents (`mockllm/documents.py`): libyaml and the pure-Python reader give the same values, tags and
lines; lines are found for any key path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mockllm import documents
from mockllm.loading import parse_yaml

DOCUMENTS = [
    "version: 1\nscenarios:\n  - id: a\n    when: {prompt: hi}\n    reply: {text: 'x'}\n",
    "a: &x [1, 2.5, true, null, ~, 0x1f, 1_000, .inf, 2001-12-14]\nb: *x\nc: |\n  block\n  text\nd: >\n  folded\n",
    "# comment\n? complex\n: value\n'quoted': \"esc\\u00e9 \\n\"\nplain: multi\n  line\nempty:\nlist:\n- - nested\n",
    '{json: [1, {"k": "v"}], "u": "\\ud83d\\ude00", t: !!str 12}\n',
    "---\nkey: value\n...\n",
    "",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_libyaml_and_pure_python_read_a_document_alike(text: str) -> None:
    fast, slow = documents.compose(text), yaml.compose(text, Loader=yaml.SafeLoader)
    if slow is None:
        assert fast is None
        return
    assert fast is not None
    assert documents.build(fast, text) == documents.build(slow, text)

    def lines(node: Any) -> list[int]:
        out = [node.start_mark.line]
        if isinstance(node, yaml.MappingNode):
            out += [line for key, value in node.value for line in (*lines(key), *lines(value))]
        elif isinstance(node, yaml.SequenceNode):
            out += [line for item in node.value for line in lines(item)]
        return out

    assert lines(fast) == lines(slow)


def test_plain_scalars_get_the_types_safe_load_gives_them() -> None:
    scalars = ["1", "-0x1F", "0o17", "1_000", "12:30:00", "1e3", "-.inf", ".NaN", "yes", "No", "on", "~", "null"]
    scalars += ["", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "'quoted 1'", "=", "<<", "text", "1.5.2", "+12"]
    text = "- " + "\n- ".join(scalars) + "\n"
    fast, slow = documents.compose(text), yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(fast, yaml.SequenceNode)
    assert isinstance(slow, yaml.SequenceNode)
    assert [node.tag for node in fast.value] == [node.tag for node in slow.value]


def test_lines_are_found_for_any_key_path() -> None:
    text = "version: 1\nscenarios:\n  - id: a\n    when:\n      prompt: hi\n    reply: {text: x}\n  - id: b\n"
    _, lines = parse_yaml(text, "s.yaml")
    assert lines.line_of(()) == 1
    assert lines.line_of(("scenarios",)) == 2
    assert lines.line_of(("scenarios", 0)) == 3
    assert lines.line_of(("scenarios", 0, "when", "prompt")) == 5
    assert lines.line_of(("scenarios", 0, "when", "missing")) == 4
    assert lines.line_of(("scenarios", 1, "id")) == 7
    assert lines.line_of(("scenarios", 9)) == 2
    assert lines.nested(("wrapped",)).line_of(("wrapped", "scenarios", 1)) == 7
    assert lines.nested(("wrapped",)).line_of(("other",)) == 1
