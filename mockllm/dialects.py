"""Dialect profiles: how each OpenAI-compatible server people deploy differs on the wire.

A profile is a handful of switches the renderers read (`openai_chat`, `openai_completions`, `embeddings`,
`faults`, `models`); the renderers never compare dialect names. Facts come from reference/wire-formats.md §8 (vLLM,
Ray Serve LLM, Baseten), §12.1 (current vLLM), §12.2 (Azure OpenAI) and §12.3 (Gemini's OpenAI-compatible endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .scenarios import DIALECTS

Engine = Literal["openai", "vllm"]
Placement = Literal["every", "last", "none"]
ErrorShape = Literal["openai", "vllm", "azure", "google"]
HeaderSet = Literal["openai", "azure", "none"]
ModelCard = Literal["openai", "vllm", "google"]


@dataclass(frozen=True)
class Dialect:
    """The switches that set one server's wire dialect apart from OpenAI's."""

    name: str
    # Whose protocol models shape the bodies: OpenAI's, or vLLM's (exclude_unset chunks, `stop_reason`, its
    # UsageInfo, no `refusal`, no `service_tier` or `obfuscation`; wire-formats.md §8.1).
    engine: Engine
    # Where a reply's reasoning text travels in `delta` / `message`; None: not sent (only counted in usage).
    reasoning_field: str | None
    # Which chunks carry `system_fingerprint`: every one (OpenAI), the last one (current vLLM, §12.1), none.
    fingerprint: Placement
    fingerprint_value: str | None
    chat_id_prefix: str  # `chatcmpl-`; Gemini's ids have no prefix (§12.3)
    errors: ErrorShape
    headers: HeaderSet  # meta headers on every answer
    filter_results: bool  # Azure's `prompt_filter_results` chunk and `content_filter_results` per choice (§12.2)
    model_card: ModelCard
    token_ids: bool  # honours vLLM's `return_token_ids` (§12.1)
    summary: str  # one line for `mockllm check` and the docs

    @property
    def vllm(self) -> bool:
        """Whether bodies follow vLLM's protocol models."""
        return self.engine == "vllm"


PROFILES: dict[str, Dialect] = {
    "openai": Dialect(
        name="openai",
        engine="openai",
        reasoning_field=None,
        fingerprint="every",
        fingerprint_value="fp_mockllm01",
        chat_id_prefix="chatcmpl-",
        errors="openai",
        headers="openai",
        filter_results=False,
        model_card="openai",
        token_ids=False,
        summary="OpenAI's API",
    ),
    "vllm": Dialect(
        name="vllm",
        engine="vllm",
        reasoning_field="reasoning",
        fingerprint="last",
        # vLLM stamps its version and a hash (wire-formats.md §8.1, "e.g. vllm-0.25.1-<hash>").
        fingerprint_value="vllm-0.25.1-mockllm01",
        chat_id_prefix="chatcmpl-",
        errors="vllm",
        headers="none",
        filter_results=False,
        model_card="vllm",
        token_ids=True,
        summary="current vLLM (reasoning in `reasoning`)",
    ),
    "vllm-0.10": Dialect(
        name="vllm-0.10",
        engine="vllm",
        reasoning_field="reasoning_content",
        fingerprint="none",
        fingerprint_value=None,
        chat_id_prefix="chatcmpl-",
        errors="vllm",
        headers="none",
        filter_results=False,
        model_card="vllm",
        token_ids=False,
        summary="vLLM 0.10 as Ray Serve LLM and Baseten document it (reasoning in `reasoning_content`)",
    ),
    "azure": Dialect(
        name="azure",
        engine="openai",
        reasoning_field=None,
        fingerprint="every",
        fingerprint_value="fp_mockllm01",
        chat_id_prefix="chatcmpl-",
        errors="azure",
        headers="azure",
        filter_results=True,
        model_card="openai",
        token_ids=False,
        summary="Azure OpenAI (content-filter results, deployments, api-version)",
    ),
    "gemini-openai": Dialect(
        name="gemini-openai",
        engine="openai",
        reasoning_field=None,
        fingerprint="none",
        fingerprint_value=None,
        chat_id_prefix="",
        errors="google",
        headers="none",
        filter_results=False,
        model_card="google",
        token_ids=False,
        summary="Gemini's OpenAI-compatible endpoint",
    ),
}
assert tuple(PROFILES) == DIALECTS, "scenarios.DIALECTS and dialects.PROFILES must name the same dialects"


def profile(name: str) -> Dialect:
    """The profile of a dialect name (already validated by Settings or the scenario schema)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"dialect={name!r} is not a dialect; use one of {', '.join(PROFILES)}") from None


# Azure's content-filter verdicts (wire-formats.md §12.2): every category, and the jailbreak detector.
_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def filter_verdict(filtered: str | None = None, jailbreak: bool = False) -> dict[str, Any]:
    """An Azure `content_filter_results` object: every category safe, or `filtered` flagged at medium severity."""
    verdict: dict[str, Any] = {
        name: {"filtered": name == filtered, "severity": "medium" if name == filtered else "safe"}
        for name in _CATEGORIES
    }
    if jailbreak:
        verdict["jailbreak"] = {"filtered": False, "detected": False}
    return verdict


def prompt_filter_results() -> list[dict[str, Any]]:
    """Azure's verdict on the prompt: on the first stream chunk and in non-streamed bodies."""
    return [{"prompt_index": 0, "content_filter_results": filter_verdict(jailbreak=True)}]


def azure_filter_chunk() -> dict[str, Any]:
    """Azure's first stream chunk: empty envelope, `choices: []` and the prompt's verdict (§12.2).

    Keys in Azure's (alphabetical) order. openai-python's `ChatCompletionStream` helper drops it because its `object`
    is `""`; a client iterating raw chunks and reading `choices[0]` crashes on it, which is what this dialect is for.
    """
    return {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    }
