"""Reading a YAML document safely, fast, and so that every value can be traced back to its line.

The document is composed into nodes (libyaml's C composer when PyYAML has it, else the pure-Python one) and built
into plain values (`dict`, `list`, scalars) by `build`, which refuses duplicate keys and documents that aliases would
blow up. Lines are not recorded while building: `Lines.line_of` finds them in the node tree when a message needs one
(an error, a scenario's `file:line`), so a folder of ten thousand scenarios does not build a path for every value.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor


class _Resolver(yaml.resolver.Resolver):
    """SafeLoader's tag resolution, called by the composer for every node, without the work it does for path
    resolvers (none are registered, unless a program adds some: then it defers to PyYAML's own)."""

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        if self.yaml_path_resolvers:
            super().descend_resolver(current_node, current_index)

    def ascend_resolver(self) -> None:
        if self.yaml_path_resolvers:
            super().ascend_resolver()

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        if kind is yaml.ScalarNode:
            if implicit[0]:
                # Resolvers by first character, then those for any character, in PyYAML's order.
                table = self.yaml_implicit_resolvers
                for tag, regexp in (*table.get(value[:1], ()), *table.get(None, ())):
                    if regexp.match(value):
                        return tag
            return self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_SEQUENCE_TAG if kind is yaml.SequenceNode else self.DEFAULT_MAPPING_TAG


# libyaml's composer is an order of magnitude faster; a document it refuses is read again by the pure-Python one,
# whose error messages the tests and the README show (`expected <block end>, but found ...`).
_FAST_LOADER: type[Any] | None = None
if hasattr(yaml, "CSafeLoader"):

    class _FastLoader(yaml.CSafeLoader, _Resolver):
        """libyaml's parser and composer with the resolver above."""

    _FAST_LOADER = _FastLoader

# Values an alias (`*name`) may repeat in one document. A "billion laughs" document nests aliases of aliases: a few
# hundred bytes that expand to billions of values. Scenario files use aliases sparingly, if at all.
MAX_ALIAS_EXPANSION = 20_000

_STR = "tag:yaml.org,2002:str"
# The constructors of the plain scalar types read only the node (and class constants), never a loader's state: one
# shared instance serves every thread. Any other tag goes through a fresh SafeLoader, which refuses it as before.
_PLAIN = SafeConstructor()
_SCALARS = {
    tag: SafeConstructor.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
    )
}
_SURROGATE = re.compile("[\ud800-\udfff]")

Path = tuple[str | int, ...]


class DocumentError(Exception):
    """A document that cannot be read: the line (1-based, 0 if unknown), the key path, and the message."""

    def __init__(self, line: int, path: Path, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.path = path
        self.message = message


class DuplicateKey(DocumentError):
    """A mapping holds the same key twice (YAML forbids it; PyYAML would keep the last one silently); `first` is
    the line of its first occurrence."""

    def __init__(self, line: int, path: Path, key: Any, first: int) -> None:
        super().__init__(line, path, f"the key `{key}` appears twice")
        self.key = key
        self.first = first


class AliasBomb(DocumentError):
    """Aliases repeat more values than `MAX_ALIAS_EXPANSION`."""


class BadText(DocumentError):
    """A string holds a lone UTF-16 surrogate (`"\\ud800"`), which is not a character."""


class _Located(Exception):
    """Raised while building, deep inside the value; each level adds its key on the way out (`_Builder.build`)."""

    def __init__(self, kind: type[DocumentError], line: int, key: Any = None, first: int = 0) -> None:
        self.kind = kind
        self.line = line
        self.key = key  # a duplicate key, and the line where it first appears
        self.first = first
        self.path: list[str | int] = []  # innermost first


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (None for an empty document); YAML errors as PyYAML raises them."""
    if _FAST_LOADER is not None:
        # A document libyaml refuses (or a text it cannot take, like a lone surrogate) is read again below: the
        # pure-Python composer's error is the one users see, or its success if it reads what libyaml did not.
        with contextlib.suppress(Exception):
            node: yaml.Node | None = yaml.compose(text, Loader=_FAST_LOADER)
            return node
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _scalar(node: yaml.Node) -> Any:
    if node.tag == _STR:
        return node.value
    constructor = _SCALARS.get(node.tag)
    if constructor is not None:
        return constructor(_PLAIN, node)
    # Anything else (`!include`, `!!python/...`, a merge key): SafeLoader refuses it, or builds it, as safe_load does.
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _key(value: Any) -> Any:
    """A mapping key as the loaded data holds it: a scalar, or the text of anything else."""
    return value if isinstance(value, str | int | float | bool) and value is not None else str(value)


def _text(node: yaml.Node) -> Any:
    """A scalar's value, with JSON's escaped surrogate pairs joined into the one character they stand for."""
    value = _scalar(node)
    if isinstance(value, str) and not value.isascii() and _SURROGATE.search(value):
        # YAML reads the JSON escape pair "\ud83d\ude00" as two surrogates; join them into the one character.
        try:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            raise _Located(BadText, node.start_mark.line + 1) from None
    return value


def _duplicate(node: yaml.MappingNode, key_node: yaml.Node, key: Any) -> _Located:
    first = next((k.start_mark.line + 1 for k, _ in node.value if _same_key(k, key)), 0)
    return _Located(DuplicateKey, key_node.start_mark.line + 1, key, first)


def _plain(node: yaml.Node) -> bool:
    """A plain ASCII string, the bulk of a scenario file: its value is the node's text as it stands."""
    return node.tag == _STR and type(node) is yaml.ScalarNode and node.value.isascii()


@dataclass
class _AliasCounter:
    """Counts the values that aliases repeat: a node met a second time is an alias's copy."""

    seen: set[int] = field(default_factory=set)
    repeated: int = 0

    def visit(self, node: yaml.Node) -> None:
        if id(node) in self.seen:
            self.repeated += 1
            if self.repeated > MAX_ALIAS_EXPANSION:
                raise _Located(AliasBomb, node.start_mark.line + 1)
        else:
            self.seen.add(id(node))


def _build(node: yaml.Node, counter: _AliasCounter | None = None) -> Any:
    """The value of a node tree, counting aliases' copies with `counter`. Without one (a document with no anchor),
    a plain ASCII string is taken as it stands, without a call of its own."""
    if counter is not None:
        counter.visit(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if counter is None and _plain(key_node):
                key = key_node.value
            else:
                try:
                    key = _key(_build(key_node, counter))
                except _Located as exc:
                    exc.path.append("<key>")
                    raise
            if key in result:
                raise _duplicate(node, key_node, key)
            if counter is None and _plain(value_node):
                result[key] = value_node.value
                continue
            try:
                result[key] = _build(value_node, counter)
            except _Located as exc:
                exc.path.append(key)
                raise
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            try:
                items.append(_build(item, counter))
            except _Located as exc:
                exc.path.append(index)
                raise
        return items
    return _text(node)


def build(node: yaml.Node, text: str) -> Any:
    """The plain value of a composed document (`text` is its source: aliases are counted only if it has an anchor,
    `&name`, for them to repeat; a glob's or a regex's `*` is no reason to).

    Raises DuplicateKey, AliasBomb or BadText with the line and key path; RecursionError for a document nested
    deeper than the interpreter recurses.
    """
    try:
        return _build(node, _AliasCounter() if "&" in text else None)
    except _Located as exc:
        path = tuple(reversed(exc.path))
        if exc.kind is DuplicateKey:
            raise DuplicateKey(exc.line, (*path, exc.key), exc.key, exc.first) from None
        raise exc.kind(exc.line, path, "") from None


class Lines:
    """The line (1-based) where the value at a key path starts, or where its key is, found in the node tree.

    `prefix` serves data that was wrapped after loading (a bare list of scenarios, loaded as `scenarios:`): paths
    start with it, and a path outside it is the document's first line.
    """

    def __init__(self, root: yaml.Node | None = None, prefix: Path = ()) -> None:
        self.root = root
        self.prefix = prefix

    def nested(self, prefix: Path) -> Lines:
        """The same lines for the data wrapped under `prefix`."""
        return Lines(self.root, (*prefix, *self.prefix))

    def _walk(self, path: Path) -> tuple[yaml.Node | None, int, bool]:
        """The deepest node along `path`, its line (the key's line for a mapping value, else the value's; the first
        line for the root), and whether the whole path was found."""
        node = self.root
        if node is None:
            return None, 1, not path
        line = int(node.start_mark.line) + 1
        if path[: len(self.prefix)] != self.prefix:
            return node, line, False
        for part in path[len(self.prefix) :]:
            if isinstance(node, yaml.MappingNode):
                found = next(((k, v) for k, v in node.value if _same_key(k, part)), None)
                if found is None:
                    return node, line, False
                line, node = int(found[0].start_mark.line) + 1, found[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = int(node.start_mark.line) + 1
            else:
                return node, line, False
        return node, line, True

    def line_of(self, path: Path) -> int:
        """The line of the deepest part of `path` the document has."""
        return self._walk(path)[1]

    def item_lines(self, path: Path, count: int) -> list[int]:
        """`line_of((*path, i))` for the first `count` items of the list at `path`, in one walk."""
        node, _, found = self._walk(path)
        if found and isinstance(node, yaml.SequenceNode) and len(node.value) >= count:
            return [int(item.start_mark.line) + 1 for item in node.value[:count]]
        return [self.line_of((*path, index)) for index in range(count)]


def _same_key(node: yaml.Node, key: Any) -> bool:
    """Is this key node the key `key` (for messages: a key that does not build is no key)?"""
    if not isinstance(node, yaml.ScalarNode):
        return False
    try:
        return bool(_key(_scalar(node)) == key)
    except yaml.YAMLError:
        return False
