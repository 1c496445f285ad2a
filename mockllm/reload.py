"""`mockllm serve --reload`: poll the scenario files and swap in each changed file once it is valid.

No dependency on a file-system notification library: a daemon thread compares the modification time, size and
inode of every watched file a few times a second. A change is acted on once it has held still for one poll
(an editor's save may truncate and write in two steps). Each changed file is validated whole; a valid one
replaces its previous version, a broken one is logged with file and line and its last good version stays.

Streams in flight never notice: a reply's frames are rendered before its first byte is sent, and replacing the
scenarios only swaps the list that later requests are matched against (under the `Scenarios` lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from .loading import Problem, files_under, id_clash, read_file
from .matching import Scenarios
from .scenarios import Scenario

log = logging.getLogger("mockllm")

Stat = tuple[int, int, int]  # mtime in ns, size, inode


def _stat(path: Path) -> Stat | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _files_under(folder: Path) -> list[Path]:
    """The scenario files of a folder in load order (as `scenario_files` orders them)."""
    try:
        return files_under(folder)
    except OSError:
        return []


class ScenarioWatcher:
    """Watches the files and folders a server loaded and reloads what changes; `start()`, `stop()`.

    `reload()` performs one check at once (without waiting for the change to settle); the background thread
    calls it every `interval` seconds once a change has held still for one poll.
    """

    def __init__(self, paths: Iterable[str | Path], scenarios: Scenarios, interval: float = 0.5) -> None:
        self.paths = [Path(p) for p in paths]
        self.scenarios = scenarios
        self.interval = interval
        self._explicit = {str(p) for p in self.paths if not p.is_dir()}
        self._stats = self._snapshot()
        # The last good version of every watched file, and the scenarios loaded from elsewhere (kept as they are).
        self._good: dict[str, list[Scenario]] = {name: [] for name in self._stats}
        self._others: list[Scenario] = []
        for scenario in scenarios.file_scenarios:
            if scenario._source in self._good:
                self._good[scenario._source].append(scenario)
            else:
                self._others.append(scenario)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _snapshot(self) -> dict[str, Stat | None]:
        """Every watched file in load order with its stat; None for a named file that is missing."""
        snapshot: dict[str, Stat | None] = {}
        for path in self.paths:
            if path.is_dir():
                for file in _files_under(path):
                    stat = _stat(file)
                    if stat is not None:
                        snapshot[str(file)] = stat
            else:
                snapshot[str(path)] = _stat(path)
        return snapshot

    # -- the check ------------------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Check the watched files now; return True when the served scenarios changed."""
        return self._apply(self._snapshot())

    def _apply(self, snapshot: dict[str, Stat | None]) -> bool:
        previous = self._stats
        if snapshot == previous:
            return False
        self._stats = snapshot
        candidate = dict(self._good)
        changed: list[str] = []
        for name, stat in snapshot.items():
            if stat == previous.get(name, ...):
                continue
            if stat is None:
                log.warning(
                    "%s is missing; keeping its last good scenarios until it comes back",
                    name,
                    extra={"fields": {"event": "reload_missing", "file": name}},
                )
                continue
            loaded, problems = read_file(Path(name))
            if problems:
                self._report(name, problems, had_version=name in self._good)
                continue
            candidate[name] = loaded
            changed.append(name)
        removed = [name for name in previous if name not in snapshot and name not in self._explicit]
        for name in removed:
            candidate.pop(name, None)
            log.info(
                "%s was removed; its scenarios are unloaded",
                name,
                extra={"fields": {"event": "reload_removed", "file": name}},
            )
        changed = self._drop_clashes(snapshot, candidate, changed)
        if not changed and not removed:
            return False
        ordered = [name for name in snapshot if name in candidate]
        self._good = {name: candidate[name] for name in ordered}
        served = [scenario for name in ordered for scenario in self._good[name]]
        self.scenarios.replace_files([*served, *self._others])
        log.info(
            "reloaded %s: now serving %d scenario%s",
            ", ".join([*changed, *(f"{name} (removed)" for name in removed)]),
            len(served) + len(self._others),
            "" if len(served) + len(self._others) == 1 else "s",
            extra={
                "fields": {
                    "event": "reload",
                    "files": changed,
                    "removed": removed,
                    "scenarios": len(served) + len(self._others),
                }
            },
        )
        return True

    def _drop_clashes(
        self, snapshot: dict[str, Stat | None], candidate: dict[str, list[Scenario]], changed: list[str]
    ) -> list[str]:
        """Revert changed files whose new ids clash with another file's; return the files still changed."""
        while True:
            first: dict[str, Scenario] = {s.name: s for s in self._others}
            clash: tuple[str, Scenario, Scenario] | None = None
            for name in [n for n in snapshot if n in candidate]:
                for scenario in candidate[name]:
                    earlier = first.setdefault(scenario.name, scenario)
                    if earlier is not scenario:
                        culprit = name if name in changed else earlier._source
                        clash = (culprit, earlier, scenario)
                        break
                if clash:
                    break
            if clash is None:
                return changed
            culprit, earlier, later = clash
            mine, other = (later, earlier) if culprit == later._source else (earlier, later)
            self._report(culprit, [id_clash(mine, other)], had_version=culprit in self._good)
            if culprit in self._good:
                candidate[culprit] = self._good[culprit]
            else:
                candidate.pop(culprit, None)
            if culprit in changed:
                changed.remove(culprit)
            else:  # pragma: no cover - the last good versions never clash with each other
                return changed

    def _report(self, name: str, problems: Sequence[Problem], had_version: bool) -> None:
        keeping = "keeping its last good version" if had_version else "not loading it"
        for problem in problems:
            log.error(
                "reload: %s (%s until it is fixed)",
                problem,
                keeping,
                extra={
                    "fields": {
                        "event": "reload_error",
                        "file": problem.source,
                        "line": problem.line,
                        "key": problem.path,
                        "problem": problem.message,
                    }
                },
            )

    # -- the thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[str, Stat | None] | None = None
        while not self._stop.wait(self.interval):
            try:
                snapshot = self._snapshot()
                if snapshot == self._stats:
                    pending = None
                elif snapshot == pending:
                    # The change held still for one poll: the editor is done writing.
                    self._apply(snapshot)
                    pending = None
                else:
                    pending = snapshot
            except Exception:  # a reload bug must not take the server down; say so and keep watching
                log.exception("reload: checking the scenario files failed")

    def start(self) -> ScenarioWatcher:
        """Start polling in a daemon thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mockllm-reload", daemon=True)
            self._thread.start()
            log.info(
                "watching %d scenario file%s for changes",
                len(self._stats),
                "" if len(self._stats) == 1 else "s",
                extra={"fields": {"event": "watch", "files": list(self._stats)}},
            )
        return self

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
