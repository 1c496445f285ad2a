"""OpenAI embeddings (`POST /v1/embeddings`): deterministic unit vectors from a hash of each input.

No scenario is needed: a request that matches none gets hashed vectors; a matching scenario (`api: embeddings`)
may fix them with `reply.vectors`, or answer with an error or a fault like any other reply.

The vector of an input is SHAKE-256 of the input read as little-endian int32 numbers and scaled to unit length,
so it is the same in every run and every process (Python's `hash()` is salted per process and never used).
Because SHAKE's output for fewer dimensions is a prefix of its output for more, `dimensions: d` gives the first
d components of the full vector, renormalised: what OpenAI documents for shortened text-embedding-3 vectors.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import struct
import time
from collections.abc import Mapping
from typing import Any

from ..dialects import profile
from ..scenarios import Reply
from ..tokens import count_tokens
from .base import (
    Frame,
    ParsedRequest,
    Plan,
    RequestError,
    optional_int,
    optional_str,
    random_id,
    require_object,
    required_model,
)
from .openai_completions import prompt_list

API = "embeddings"
DEFAULT_DIMENSIONS = 1536
MAX_DIMENSIONS = 16384
# Native sizes of OpenAI's embedding models; any other model gets DEFAULT_DIMENSIONS.
MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
FIXED_SIZE_MODELS = ("text-embedding-ada-002",)  # OpenAI refuses `dimensions` for these
ENCODINGS = ("float", "base64")


def native_dimensions(model: str) -> int:
    """How many dimensions `model`'s vectors have when `dimensions` is not given."""
    return MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def parse(raw: Any, headers: Mapping[str, str]) -> ParsedRequest:
    """Validate an embeddings request the way OpenAI does, and reduce it to what matching needs."""
    body = require_object(raw)
    model = required_model(body)
    inputs = prompt_list(body.get("input"), "input")
    for index, item in enumerate(inputs):
        if item == "":
            where = f"input[{index}]" if isinstance(body.get("input"), list) else "input"
            raise RequestError(
                f"Invalid '{where}': empty string. Expected a string with minimum length 1; send some text to embed.",
                param=where,
                code="empty_string",
            )
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise RequestError(
            f"Invalid value: {json.dumps(encoding)}. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    dimensions = optional_int(body, "dimensions", minimum=1, maximum=MAX_DIMENSIONS)
    if dimensions is not None and model in FIXED_SIZE_MODELS:
        raise RequestError(
            f"This model does not support specifying dimensions: {model} always returns "
            f"{native_dimensions(model)}. Drop 'dimensions', or use a text-embedding-3 model.",
            param="dimensions",
        )
    if dimensions is not None and model in MODEL_DIMENSIONS and dimensions > MODEL_DIMENSIONS[model]:
        raise RequestError(
            f"Invalid 'dimensions': {model} has {MODEL_DIMENSIONS[model]} dimensions, so 'dimensions' must be at "
            f"most {MODEL_DIMENSIONS[model]}, but got {dimensions} instead.",
            param="dimensions",
            code="integer_above_max_value",
        )
    optional_str(body, "user")
    return ParsedRequest(
        api=API,
        body=body,
        headers=headers,
        model=model,
        prompts=[item for item in inputs if isinstance(item, str)],
        prompt_tokens=sum(count_tokens(item) if isinstance(item, str) else len(item) for item in inputs),
        inputs=inputs,
    )


def check_reply(reply: Reply, request: ParsedRequest, scenario: str) -> None:
    """A scenario's fixed `vectors` must fit the request: one per input, of the dimensions asked for."""
    vectors = reply.vectors
    if vectors is None:
        return
    if len(vectors) != len(request.inputs):
        raise RequestError(
            f"The scenario `{scenario}` fixes {len(vectors)} vector{'s' if len(vectors) != 1 else ''} "
            f"(reply.vectors) but this request has {len(request.inputs)} input"
            f"{'s' if len(request.inputs) != 1 else ''}. Give one vector per input, or narrow the scenario's "
            f"`when` to the requests it fits.",
            param="input",
        )
    dimensions = request.body.get("dimensions")
    if dimensions is not None and len(vectors[0]) != dimensions:
        raise RequestError(
            f"The scenario `{scenario}` fixes vectors of {len(vectors[0])} dimensions (reply.vectors) but this "
            f"request asks for 'dimensions': {dimensions}. Make the vectors that long, or match on "
            f"`body: {{dimensions: {len(vectors[0])}}}`.",
            param="dimensions",
        )


@functools.lru_cache(maxsize=1024)
def _hashed(key: bytes, dimensions: int) -> tuple[float, ...]:
    # Salted so that the vectors are mockllm's own.
    raw = hashlib.shake_256(b"mockllm-embedding\0" + key).digest(4 * dimensions)
    ints = struct.unpack(f"<{dimensions}i", raw)
    norm = math.sqrt(math.fsum(float(x) * x for x in ints)) or 1.0
    # Round to float32, as the real vectors are: the float and base64 forms then carry the same numbers.
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in ints))
    return struct.unpack(f"<{dimensions}f", packed)


def hashed_vector(item: str | list[int], dimensions: int) -> list[float]:
    """The unit vector of one input (a text or a list of token ids): the same in every run and process."""
    key = b"text\0" + item.encode() if isinstance(item, str) else b"tokens\0" + ",".join(map(str, item)).encode()
    return list(_hashed(key, dimensions))


def _short(value: float) -> float:
    """A float32 value with the fewest digits that still read back as the same float32 (9 at most)."""
    return float(f"{value:.9g}")


def _vectors(plan: Plan, request: ParsedRequest) -> list[list[float]]:
    if plan.vectors is not None:
        return [list(vector) for vector in plan.vectors]
    dimensions = request.body.get("dimensions") or native_dimensions(request.model or "")
    return [hashed_vector(item, dimensions) for item in request.inputs]


def _encode(vector: list[float], encoding: str) -> str | list[float]:
    if encoding == "base64":
        # Little-endian float32, as OpenAI sends them and the SDK decodes them (numpy or array "f").
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return [_short(value) for value in vector]


def render_body(plan: Plan, request: ParsedRequest, dialect: str) -> bytes:
    """The JSON body: one `embedding` object per input, in order, and usage."""
    encoding = request.body.get("encoding_format") or "float"
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
        for index, vector in enumerate(_vectors(plan, request))
    ]
    if profile(dialect).vllm:
        # vLLM's EmbeddingResponse: an id and `created`, compact, usage with every UsageInfo field.
        body: dict[str, Any] = {
            "id": random_id("embd-", 32),
            "object": "list",
            "created": int(time.time()),
            "model": plan.model,
            "data": [{"index": item["index"], "object": "embedding", "embedding": item["embedding"]} for item in data],
            "usage": {
                "prompt_tokens": plan.prompt_tokens,
                "total_tokens": plan.prompt_tokens,
                "completion_tokens": 0,
                "prompt_tokens_details": None,
            },
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    body = {
        "object": "list",
        "data": data,
        "model": plan.model,
        "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens},
    }
    # OpenAI pretty-prints non-streamed bodies with 2 spaces (wire-formats.md §2.1).
    return json.dumps(body, ensure_ascii=False, indent=2).encode()


def render_stream(plan: Plan, request: ParsedRequest, dialect: str) -> list[Frame]:
    """Embeddings never stream; `parse` leaves `stream` false, so this is the body as one frame."""
    return [Frame(render_body(plan, request, dialect), "content")]
