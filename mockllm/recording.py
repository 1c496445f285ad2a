"""Recording: an upstream exchange saved as an ordinary scenario file, atomically, with secrets scrubbed.

Two layouts share one writer: `--out DIR` holds one file per distinct request (`<api>-<hash>.yaml`), and the
pytest plugin keeps one cassette per test holding one scenario per distinct request. Either way the file is
what `mockllm serve` loads and replays, and a new recording is served at once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._version import __version__
from .loading import load_text
from .matching import Scenarios
from .redaction import Redactor, normalize_request, redactor
from .scenarios import Scenario

MODES = ("none", "missing", "all")
APIS = ("chat", "completions", "responses", "messages", "embeddings", "models")
# Where each API is recorded from unless `--upstream` says otherwise.
DEFAULT_UPSTREAMS = dict.fromkeys(APIS, "https://api.openai.com") | {"messages": "https://api.anthropic.com"}

# Response headers worth replaying (DESIGN.md): what the SDKs read. Credentials, cookies and hop-by-hop headers
# never reach a recording.
KEPT_HEADERS = frozenset(
    {"content-type", "x-request-id", "request-id", "retry-after", "retry-after-ms", "x-should-retry"}
)
KEPT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


class UpstreamError(ValueError):
    """A malformed `--upstream` value."""


def parse_upstream(text: str | None) -> dict[str, str]:
    """The upstream base URL of every API: `URL` for all of them, or `chat=URL,messages=URL` per API (the APIs not
    named keep their default: OpenAI's public API, Anthropic's for `messages`)."""
    upstreams = dict(DEFAULT_UPSTREAMS)
    if not text:
        return upstreams
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        url = _url(parts[0])
        return dict.fromkeys(APIS, url)
    for part in parts:
        api, sep, url = part.partition("=")
        if not sep:
            raise UpstreamError(
                f"{part!r} names no API; give one URL, or API=URL pairs such as "
                f"chat=https://api.openai.com,messages=https://api.anthropic.com"
            )
        api = api.strip()
        if api not in APIS:
            raise UpstreamError(f"{api!r} is not an API; use {', '.join(APIS)}")
        upstreams[api] = _url(url.strip())
    return upstreams


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise UpstreamError(f"{text!r} is not an http(s) URL; give one like https://api.openai.com")
    return text.rstrip("/")


def kept_headers(headers: Mapping[str, str], scrub: Redactor) -> dict[str, str]:
    """The response headers a recording keeps, redacted."""
    kept = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_PREFIXES)
    }
    return scrub.headers(kept)


def request_key(api: str, request: Any) -> str:
    """A stable name for a distinct request: 12 hex digits of a hash of its normalised body."""
    canonical = json.dumps([api, request], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class _Dumper(yaml.SafeDumper):
    """YAML that keeps long bodies readable: multi-line strings as `|` blocks (PyYAML falls back to quotes
    whenever a block could not give the string back exactly)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    """A document as the recorder writes it: stable key order, UTF-8 kept, wide lines."""
    text: str = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16)
    return text


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) never sees half a file: a temporary file in the same
    folder, flushed to disk, then renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class _Recording:
    """One distinct request and the answers recorded for it (several in `all` mode: a `replies` sequence)."""

    api: str
    request: Any
    raws: list[dict[str, Any]] = field(default_factory=list)

    def scenario(self, key: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": f"{self.api}-{key}", "when": {"api": self.api, "request": self.request}}
        if len(self.raws) == 1:
            out["reply"] = {"raw": self.raws[0]}
        else:
            out["replies"] = [{"raw": raw} for raw in self.raws]
            out["then"] = "repeat-last"
        return out


@dataclass
class Target:
    """Where a recording goes, fixed when its request arrives: a folder, or a cassette and its recordings so far.
    (A test may end, and the plugin point the recorder at the next test's cassette, while an answer still streams.)"""

    cassette: Path | None
    recordings: dict[str, _Recording]


class Recorder:
    """Saves exchanges and makes them answer at once.

    `out` is a folder (one file per distinct request) or, with `cassette`, one file for all of them. In `all`
    mode, identical requests of one run become one `replies` sequence that replaces the earlier recording.
    """

    def __init__(
        self,
        scenarios: Scenarios,
        mode: str,
        upstreams: Mapping[str, str],
        redact: tuple[str, ...] = (),
        out: Path | None = None,
        cassette: Path | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"record={mode!r} is not a record mode; use one of {', '.join(MODES)}")
        self.scenarios = scenarios
        self.mode = mode
        self.upstreams = dict(upstreams)
        self.patterns = tuple(redact)
        # The server's own --api-key and --admin-token are scrubbed too (an upstream may echo a key back), but not
        # stored among the file's `recorded.redact` patterns, which would write them down.
        self.scrub = redactor((*self.patterns, *(re.escape(secret) for secret in secrets)))
        self.out = out
        self._lock = threading.Lock()
        self._target = Target(cassette, {})  # this run's (and, for a cassette, the file's) recordings

    def use_cassette(self, path: Path | None, keep: list[Scenario]) -> None:
        """Record into this cassette from now on (the pytest plugin, per test); `keep` are its recordings so far,
        which a rewrite of the file keeps (none in `all` mode: the cassette is rewritten whole)."""
        with self._lock:
            self._target = Target(path, {})
            for scenario in keep:
                request = scenario.when.request
                if scenario.when.api is None or request is None:
                    continue
                raws = [
                    reply.raw.model_dump(mode="json", exclude_none=True) for reply in scenario.sequence if reply.raw
                ]
                key = request_key(scenario.when.api, request)
                self._target.recordings[key] = _Recording(scenario.when.api, request, raws)

    def normalize(self, body: Any) -> Any:
        """A request body as this recorder stores it."""
        return normalize_request(body, self.patterns)

    def raw(
        self,
        status: int,
        headers: Mapping[str, str],
        body: str | None,
        events: list[dict[str, Any]] | None,
        at: float | None,
    ) -> dict[str, Any]:
        """The `raw` block of a recorded answer, redacted."""
        raw: dict[str, Any] = {"status": status, "headers": kept_headers(headers, self.scrub)}
        if events is not None:
            raw["events"] = [
                {**({"event": e["event"]} if e.get("event") is not None else {}), "data": self.scrub.text(e["data"]),
                 "at": e["at"]}
                for e in events
            ]  # fmt: skip
        else:
            raw["body"] = self.scrub.text(body or "")
            if at is not None:
                raw["at"] = at
        return raw

    def target(self) -> Target:
        """Where a request arriving now will be recorded."""
        with self._lock:
            return self._target

    def save(self, api: str, body: Any, raw: dict[str, Any], target: Target | None = None) -> str:
        """Write the exchange (to `target`, by default the current one) and serve it from now on; returns the
        scenario id."""
        request = self.normalize(body)
        key = request_key(api, request)
        with self._lock:
            target = target or self._target
            recording = target.recordings.get(key)
            if recording is None or self.mode != "all":
                recording = _Recording(api, request)
                target.recordings[key] = recording
            recording.raws.append(raw)
            scenario = recording.scenario(key)
            if target.cassette is not None:
                path = target.cassette
                document = self._document([r.scenario(k) for k, r in target.recordings.items()], api)
            else:
                assert self.out is not None
                path = self.out / f"{api}-{key}.yaml"
                document = self._document([scenario], api)
            text = dump(document)
            write_atomically(path, text)
            loaded = load_text(text, str(path))
            self.scenarios.upsert_files([s for s in loaded if s.name == scenario["id"]])
        return str(scenario["id"])

    def _document(self, scenarios: list[dict[str, Any]], api: str) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        upstreams = sorted({self.upstreams.get(s["when"]["api"], self.upstreams[api]) for s in scenarios})
        return {
            "version": 1,
            "recorded": {
                "upstream": upstreams[0] if len(upstreams) == 1 else ", ".join(upstreams),
                "date": now,
                "mockllm": __version__,
                "redact": list(self.patterns),
            },
            "scenarios": scenarios,
        }


def check_record_settings(
    record: str, upstream: str | None, out: str | None, redact: list[str], upstream_timeout: float
) -> None:
    """Refuse record options that cannot work, naming the option and the fix (ValueError)."""
    if record not in MODES:
        raise ValueError(f"record={record!r} is not a record mode; use one of {', '.join(MODES)}")
    if record != "none" and not out:
        raise ValueError(f"record={record!r} needs a folder to write the recordings to and replay them from: out=DIR")
    try:
        parse_upstream(upstream)
    except UpstreamError as exc:
        raise ValueError(f"upstream={upstream!r}: {exc}") from None
    for pattern in redact:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"redact pattern {pattern!r} does not compile: {exc}; fix the regular expression"
            ) from None
    if not upstream_timeout > 0:
        raise ValueError(f"upstream_timeout={upstream_timeout!r} must be more than 0 seconds")


# A temporary file of `write_atomically` (`.<name>.<random>.tmp`): never loaded (not .yaml), and removed at start-up
# once it is older than any write in progress could be (a server killed mid-write leaves one behind).
_STALE_AFTER = 300.0


def prepare_out(out: str | Path) -> None:
    """Make sure recordings can be written to `out` (created if missing) before the server starts, and remove the
    temporary files a killed server left there; ValueError naming the folder and the fix if it cannot be written."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mockllm-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(
            f"out={str(out)!r} cannot hold recordings ({reason}); give a writable folder (or one that can be "
            f"created) to --out"
        ) from None
    now = time.time()
    for stale in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if now - stale.stat().st_mtime > _STALE_AFTER:
                stale.unlink()


def recordings_in(out: str | Path | None) -> list[Path]:
    """`out` as a path to load, when it already holds recordings (`--out` is replayed as well as written)."""
    if not out:
        return []
    folder = Path(out)
    if folder.is_dir() and any(p.suffix in (".yaml", ".yml") for p in folder.rglob("*") if p.is_file()):
        return [folder]
    return []
