"""Property-based: generated scenario documents (mutations of the example files, and random ones) through the loader,
`mockllm check` and `POST /_mockllm/scenarios`: each is accepted or refused with a message, none crashes.

Seeded (`derandomize=True`) and bounded (`max_examples`); one server for the module.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import EXAMPLES
from hypothesis import HealthCheck, settings
from hypothesis import given as given_
from hypothesis import strategies as st
from mutation import key_paths

from mockllm import MockServer
from mockllm.cli import main
from mockllm.loading import ScenarioError, load_text

TEXTS = [path.read_text() for path in sorted(EXAMPLES.glob("*.yaml"))]
DOCUMENTS: list[Any] = [yaml.safe_load(text) for text in TEXTS]
SCENARIOS: list[Any] = [scenario for document in DOCUMENTS for scenario in document["scenarios"]]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(["1s", "-1s", "50ms", "(", "*", "end", "repeat-last", "chat", "messages", "user", "stall"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
# Keys a scenario document uses, so that a random value lands where the validator has something to say.
KEYS = sorted(
    {"id", "when", "reply", "replies", "then", "dialect", "version", "scenarios", "text", "chunks", "error", "fault",
     "timing", "tool_calls", "usage", "status", "kind", "after", "regex", "contains", "glob", "raw", "request"}
)  # fmt: skip


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """An example document, or a few of its scenarios, with one to three values replaced, removed or added."""
    if draw(st.booleans()):
        document: Any = json.loads(json.dumps(draw(st.sampled_from(DOCUMENTS))))
    else:
        picked = draw(st.lists(st.sampled_from(SCENARIOS), min_size=1, max_size=3))
        document = json.loads(json.dumps({"version": 1, "scenarios": picked}))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(key_paths(document)))
        if not path:
            document = draw(json_values) if draw(st.integers(0, 9)) == 0 else document
            if not isinstance(document, dict):
                return document
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        choice = draw(st.integers(0, 2))
        if choice == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        elif choice == 1 and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    return document


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    """An example file's text with a few characters cut, doubled or replaced (broken YAML, indentation, anchors)."""
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        insert = draw(
            st.sampled_from(["", ":", "- ", "  ", "\n", "*a", "&a ", "{", "]", "!!python/object ", "\t", "'"])
        )
        text = text[:at] + insert + text[at + cut :]
    return text


documents = st.one_of(
    mutated_documents().map(lambda document: yaml.safe_dump(document, allow_unicode=True)),
    mutated_documents().map(json.dumps),
    mutated_texts(),
    json_values.map(json.dumps),
    st.text(max_size=60),
)

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def loaded_or_refused(text: str) -> bool:
    """True when the loader accepts `text`; a refusal must be a ScenarioError with a message per problem."""
    try:
        load_text(text, "<generated>")
    except ScenarioError as exc:
        problems = exc.problems
    else:
        return True
    assert problems, text
    assert all(str(problem) for problem in problems), text
    return False


@settings(SETTINGS, max_examples=1500)
@given_(text=documents)
def test_the_loader_accepts_or_explains_any_document(text: str) -> None:
    loaded_or_refused(text)


@settings(SETTINGS, max_examples=300)
@given_(text=documents)
def test_mockllm_check_accepts_or_explains_any_document(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", str(path)])
    assert code in (0, 1), err.getvalue()
    assert "Traceback" not in err.getvalue()
    if code == 1:
        assert "error: " in err.getvalue()
        assert "problem" in err.getvalue()
    else:
        assert out.getvalue().startswith("ok: ")


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with MockServer(time_scale=0) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http
        assert http.get("/_mockllm/health").status_code == 200


@settings(SETTINGS, max_examples=700)
@given_(text=documents)
def test_the_admin_api_accepts_or_refuses_any_document_clearly(client: httpx.Client, text: str) -> None:
    response = client.post("/_mockllm/scenarios", content=text.encode("utf-8", "surrogatepass"))
    assert response.status_code in (201, 400, 409), response.text
    if response.status_code == 201:
        client.delete("/_mockllm/scenarios")
        return
    message = response.json()["error"]["message"]
    assert isinstance(message, str)
    assert message
    assert "Traceback" not in message
