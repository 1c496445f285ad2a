"""A folder mounted from a Kubernetes ConfigMap: each file is a symlink into `..data/`, itself a symlink to a
hidden `..<timestamp>/` folder that an update swaps. mockllm loads each file once, under its visible name, and a
reload after the swap does not see its scenarios twice."""

from __future__ import annotations

import os
from pathlib import Path

from mockllm.loading import load_scenarios, scenario_files
from mockllm.matching import Scenarios
from mockllm.reload import ScenarioWatcher

DOC = "version: 1\nscenarios:\n  - id: greet\n    when: {{prompt: hi}}\n    reply: {{text: {text}}}\n"


def mount(folder: Path, stamp: str, text: str) -> None:
    """Write the ConfigMap's files as the kubelet does: a new hidden folder, then `..data` swapped to it."""
    (folder / stamp).mkdir()
    (folder / stamp / "basics.yaml").write_text(DOC.format(text=text))
    (folder / "..data_tmp").symlink_to(stamp)
    os.replace(folder / "..data_tmp", folder / "..data")
    if not (folder / "basics.yaml").is_symlink():
        (folder / "basics.yaml").symlink_to("..data/basics.yaml")


def test_a_configmap_mount_loads_each_file_once_by_its_visible_name(tmp_path: Path) -> None:
    mount(tmp_path, "..2026_01_01_00_00_00.1", "Hello")
    assert [path.name for path, _ in scenario_files([tmp_path])] == ["basics.yaml"]
    [scenario] = load_scenarios([tmp_path])
    assert scenario.location.startswith(str(tmp_path / "basics.yaml"))


def test_a_configmap_update_reloads_without_clashes(tmp_path: Path) -> None:
    mount(tmp_path, "..2026_01_01_00_00_00.1", "Hello")
    scenarios = Scenarios(load_scenarios([tmp_path]))
    watcher = ScenarioWatcher([tmp_path], scenarios)
    mount(tmp_path, "..2026_01_01_00_05_00.2", "Hello again")
    watcher.reload()
    [scenario] = scenarios.all()
    assert scenario.reply is not None
    assert scenario.reply.text == "Hello again"
