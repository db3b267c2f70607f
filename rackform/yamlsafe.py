"""Safe, bounded YAML loading that remembers where each value came from.

PyYAML's safe_load already refuses arbitrary objects, but it accepts duplicate keys (the last silently wins) and
expands aliases without limit (a "billion laughs" document takes the process down). Building plain data from the
composed node tree ourselves fixes both and records a line number per path for error messages.
"""

from __future__ import annotations

from typing import Any

import yaml

from .problems import PathPart, Problem, SpecError, format_path

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Builder:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.nodes = 0
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, path: tuple[PathPart, ...]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SpecError([Problem("error", format_path(path), f"document expands to more than {MAX_NODES} "
                                     "values (aliases nested too deep?); write it out plainly")])
        if len(path) > MAX_DEPTH:
            raise SpecError([Problem("error", format_path(path), f"nested deeper than {MAX_DEPTH} levels")])
        self.lines.setdefault(format_path(path), node.start_mark.line + 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            # Building collections ourselves would otherwise drop a tag like !!python/object silently.
            raise yaml.constructor.ConstructorError(None, None, f"unsupported tag {node.tag!r}", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
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
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


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
