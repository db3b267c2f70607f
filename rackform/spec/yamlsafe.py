"""Safe, bounded YAML loading that remembers where each value came from.

PyYAML's safe_load already refuses arbitrary objects, but it accepts duplicate keys (the last silently wins) and
expands aliases and merge keys without limit (a "billion laughs" document, or 758 bytes of nested `<<:` merges,
takes the process down). Building plain data from the composed node tree ourselves fixes both and records a line
number per path for error messages.
"""

from __future__ import annotations

from typing import Any

import yaml

from .problems import PathPart, Problem, SpecError, format_path

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
# No spec field takes a number this long; Python refuses to convert ints over 4,300 digits anyway (a ValueError).
MAX_NUMBER_CHARS = 100
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_MERGE = "tag:yaml.org,2002:merge"
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.nodes = 0
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._merging: set[int] = set()

    def build(self, node: yaml.Node, path: tuple[PathPart, ...]) -> object:
        # Every value is counted before it is built, including each re-visit through an alias or a merge key, so a
        # document of nested aliases or merges stops at MAX_NODES instead of growing exponentially.
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError([Problem("error", format_path(path), f"document expands to more than {MAX_NODES} "
                                     "values (aliases or merge keys nested too deep?); write it out plainly")])
        if len(path) > MAX_DEPTH:
            raise SpecError([Problem("error", format_path(path), f"nested deeper than {MAX_DEPTH} levels")])
        self.lines.setdefault(format_path(path), node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            # Building collections ourselves would otherwise drop a tag like !!python/object silently.
            raise yaml.constructor.ConstructorError(None, None, f"unsupported tag {node.tag!r}", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: tuple[PathPart, ...]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append((key_node, value_node))
                continue
            key = self.build(key_node, path)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                self.problems.append(Problem("error", format_path(path), f"keys must be plain strings, got "
                                             f"{type(key).__name__}", line=key_node.start_mark.line + 1))
                continue
            if key in out:
                self.problems.append(Problem(
                    "error", format_path((*path, str(key))),
                    f"duplicate key {key!r} (first at line {self.lines.get(format_path((*path, str(key))))}); "
                    "YAML keeps only the last, so remove one", line=key_node.start_mark.line + 1))
                continue
            out[key] = self.build(value_node, (*path, str(key)))
        if len(merges) > 1:
            self.problems.append(Problem("error", format_path(path), "more than one merge key '<<' in one mapping; "
                                         "list the mappings in one: <<: [*a, *b]",
                                         line=merges[1][0].start_mark.line + 1))
        # YAML's merge key (https://yaml.org/type/merge.html): the mapping's own keys override merged ones, and of
        # the merged mappings the earlier in the list wins. Not PyYAML's flatten_mapping: it copies every merged
        # pair into the shared anchor node, so nested merges double in memory at each level before anything counts.
        for _, value_node in merges[:1]:
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode) or id(source) in self._merging:
                    why = "merges itself" if isinstance(source, yaml.MappingNode) else "is not a mapping"
                    self.problems.append(Problem("error", format_path(path), f"merge key '<<' {why}: it takes a "
                                                 "mapping (&anchor / *alias) or a list of them",
                                                 line=source.start_mark.line + 1))
                    continue
                self._merging.add(id(source))
                try:
                    merged = self.build(source, path)
                finally:
                    self._merging.discard(id(source))
                assert isinstance(merged, dict)  # a MappingNode builds into a dict
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def _scalar(self, node: yaml.Node, path: tuple[PathPart, ...]) -> object:
        if node.tag == "tag:yaml.org,2002:value":  # a plain `=`, which PyYAML has no constructor for
            return node.value
        if node.tag in _NUMBERS and ":" in node.value:
            # YAML 1.1 base 60 (1:20 is 80): YAML 1.2 dropped it, and nobody means a count in minutes and seconds.
            return node.value
        if node.tag in _NUMBERS and len(node.value) > MAX_NUMBER_CHARS:
            self.problems.append(Problem("error", format_path(path), f"{node.value[:20]}... is a number of "
                                         f"{len(node.value):,} characters; no field takes one that large",
                                         rule="schema", line=node.start_mark.line + 1))
            return None
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as e:  # a timestamp like 2024-13-45: the resolver's pattern matches, the calendar does not
            self.problems.append(Problem("error", format_path(path), f"{node.value[:40]!r} is not a valid "
                                         f"{node.tag.rsplit(':', 1)[-1]} ({e})", line=node.start_mark.line + 1))
            return None


def load_yaml(text: str | bytes, source: str = "spec") -> tuple[Any, dict[str, int]]:
    """Parse one YAML document into plain data; return it with a map of field path -> line number."""
    if len(text) > MAX_BYTES:
        raise SpecError([Problem("error", "<spec>", f"{source} is {len(text):,} bytes; specs are limited to "
                                 f"{MAX_BYTES:,} bytes")])
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Problem("error", "<spec>", f"{source} is empty; see `rackform schema` or "
                                     "examples/demo.yaml for the expected shape")])
        builder = _Builder(loader)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise SpecError([Problem("error", "<spec>", f"not valid YAML: {what}", line=line)]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem("error", "<spec>", f"not valid YAML: {e}")]) from None
    except RecursionError:
        raise SpecError([Problem("error", "<spec>", "YAML nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.problems:
        raise SpecError(builder.problems)
    return data, builder.lines
