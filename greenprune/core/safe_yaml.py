"""The one YAML loader for files others write: task YAML and experiment files.

YAML can say more than the data it seems to hold. A tag (``!function``, ``!!python/name``, or
any of them respelled through a ``%TAG`` directive) asks the reader to build objects or import
code; a repeated key or a merge key (``<<``) gives one key two values, so a check that reads the
first can pass what a library that keeps the last then uses; anchors and aliases expand to far
more than the text; deep nesting overflows recursive readers. :func:`load_yaml` refuses all of
these, each with the file, the line and the rule:

1. the size, before anything is parsed;
2. the event stream (linear, no recursion): documents, ``%TAG`` directives, tags, anchors and
   aliases, nesting depth and node count;
3. the node tree: keys that are not scalars, merge keys, keys that appear twice (compared as
   the values they load to, so ``1`` and ``0x1`` are the same key);
4. only then the data is built, with PyYAML's safe constructor.

What it returns holds the node tree (with lines, for callers that point at fields or rewrite
values) and the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from greenprune.core.file_read import RefusedFileError

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NODE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
_OPENERS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSERS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


@dataclass(frozen=True)
class YamlRules:
    """What a YAML file may hold.

    Attributes:
        max_bytes: The largest file, refused before parsing.
        max_depth: The deepest nesting of mappings and lists.
        max_nodes: The most scalars, mappings and lists.
        allow_tags: Whether explicit tags and ``%TAG`` directives are allowed (task YAML where
            the operator allows task code: lm-eval's ``!function``).
        allow_aliases: Whether anchors and aliases are allowed.
        tag_hint: Appended to the refusal of a tag (what would allow it).
    """

    max_bytes: int
    max_depth: int
    max_nodes: int
    allow_tags: bool = False
    allow_aliases: bool = False
    tag_hint: str = ""


@dataclass(frozen=True)
class LoadedYaml:
    """A checked YAML document.

    Attributes:
        node: The node tree (None for an empty document); lines are ``start_mark.line + 1``.
        data: What the document loads to with the safe constructor.
    """

    node: yaml.Node | None
    data: Any


def load_yaml(content: bytes | str, name: str, rules: YamlRules) -> LoadedYaml:
    """Checks and loads one YAML document.

    Args:
        content: The file's bytes (UTF-8) or text.
        name: How refusals name the file.
        rules: The limits and what is allowed.

    Raises:
        RefusedFileError: Naming the file, the line and the rule broken.
    """
    size = len(content.encode("utf-8")) if isinstance(content, str) else len(content)
    if size > rules.max_bytes:
        raise RefusedFileError(name, f"is {size} bytes, larger than the {rules.max_bytes} allowed")
    if isinstance(content, bytes):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = content.count(b"\n", 0, exc.start) + 1
            raise RefusedFileError(
                name, f"is not UTF-8 text (byte {exc.start}); is it a binary file?", line
            ) from None
    else:
        text = content
    try:
        _check_events(text, name, rules)
        node = yaml.compose(text, Loader=_Loader)
        if node is None:
            return LoadedYaml(None, None)
        _check_keys(node, name, rules)
        return LoadedYaml(node, _constructor(rules).construct_document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        if "nesting depth" in str(exc.problem):  # libyaml's own limit, met before ours
            raise RefusedFileError(name, _too_deep(rules), line) from None
        raise RefusedFileError(name, f"not valid YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise RefusedFileError(name, f"not valid YAML: {str(exc)[:200]}", 1) from None


def _check_events(text: str, name: str, rules: YamlRules) -> None:
    depth = nodes = documents = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise RefusedFileError(name, "holds more than one YAML document (---)", line)
            if event.tags and not rules.allow_tags:
                handle, prefix = next(iter(event.tags.items()))
                raise RefusedFileError(
                    name,
                    f"declares '%TAG {handle} {prefix}': YAML tag directives and tags are not"
                    f" allowed{rules.tag_hint}",
                    line,
                )
        elif isinstance(event, yaml.AliasEvent) and not rules.allow_aliases:
            raise RefusedFileError(
                name, "YAML anchors and aliases (&name, *name) are not allowed", line
            )
        elif isinstance(event, _NODE_EVENTS):
            nodes += 1
            if nodes > rules.max_nodes:
                raise RefusedFileError(name, f"holds more than {rules.max_nodes} values", line)
            if event.anchor is not None and not rules.allow_aliases:
                raise RefusedFileError(
                    name, "YAML anchors and aliases (&name, *name) are not allowed", line
                )
            if event.tag is not None and not rules.allow_tags:
                raise RefusedFileError(
                    name,
                    f"uses the tag {event.tag!r}: YAML tags (!tag) are not allowed{rules.tag_hint}",
                    line,
                )
            if isinstance(event, _OPENERS):
                depth += 1
                if depth > rules.max_depth:
                    raise RefusedFileError(name, _too_deep(rules), line)
        elif isinstance(event, _CLOSERS):
            depth -= 1


def _too_deep(rules: YamlRules) -> str:
    return f"nested more than {rules.max_depth} levels deep"


def _check_keys(root: yaml.Node, name: str, rules: YamlRules) -> None:
    """Refuses complex keys, merge keys and repeated keys anywhere in the tree."""
    constructor = _constructor(rules)
    pending: list[tuple[yaml.Node, str]] = [(root, "")]
    visited: set[int] = set()  # an alias shares its node: check it once, not once per path
    while pending:
        node, where = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: set[Any] = set()
        for key, value in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                raise RefusedFileError(name, "a key must be a plain value", line, where)
            if key.tag == _MERGE_TAG:
                raise RefusedFileError(name, "merge keys (<<) are not allowed", line, where)
            try:
                loaded = constructor.construct_object(key)
                hash(loaded)
            except (yaml.YAMLError, TypeError):
                loaded = (key.tag, key.value)
            path = f"{where}.{key.value}" if where else str(key.value)
            if loaded in seen:
                raise RefusedFileError(name, "appears twice", line, path)
            seen.add(loaded)
            pending.append((value, path))


class _TolerantLoader(yaml.SafeLoader):
    """The safe constructor, building values of unknown tags as if untagged."""


def _untagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_TolerantLoader.add_constructor(None, _untagged)


def _constructor(rules: YamlRules) -> yaml.SafeLoader:
    return (_TolerantLoader if rules.allow_tags else yaml.SafeLoader)("")
