"""Reading a config file (YAML or JSON) so that no file, however hostile, ends in a traceback or a hang.

`yaml.safe_load` alone has four ways out that are not a message: bytes that are not UTF-8
(UnicodeDecodeError), an integer of more than 4300 digits (Python's int-from-text limit, a ValueError),
aliases that expand exponentially (a 530-byte "billion laughs" file composes to 10^9 values that a
printer then walks: gigabytes) and recursive aliases. Here each one is one message naming the file,
and the line where there is one. A key written twice is accepted as YAML readers (and the anchor) do,
the last one winning, but said in a log line: nothing is changed silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

logger = logging.getLogger("tunelab.config")

#: the most values (scalars, lists, mappings) a config may hold once its aliases are expanded; real
#: configs hold a few hundred, a billion-laughs document 10^9
MAX_EXPANDED_NODES = 100_000


def decode_utf8(path: Path, data: bytes) -> str:
    """The file's text, or one message naming the first byte that is not UTF-8 and where it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        raise UserError(f"{path}:{line}: not valid UTF-8: byte 0x{byte:02x} at offset {error.start}; save the "
                        "file as UTF-8 (most editors: 'Save with encoding').") from None
    return text.removeprefix("\ufeff")  # a byte-order mark, as Windows editors write it


def _expanded_size(root: Any, path: Path) -> int:
    """How many nodes `root` stands for with every alias expanded, computed over the shared graph (each
    node once, memoised), so a billion-laughs document is measured in microseconds, not expanded."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise UserError(
                    f"{path}:{node.start_mark.line + 1}: its YAML aliases (*name) expand to more than "
                    f"{MAX_EXPANDED_NODES} values (a 'billion laughs' document); write the values out instead."
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise UserError(f"{path}:{node.start_mark.line + 1}: a YAML alias refers to the value that contains it "
                            "(a recursive alias); a config value cannot contain itself.")
        on_path.add(key)
        stack.append((node, True))
        stack += [(child, False) for child in _children(node) if id(child) not in sizes]
    return sizes[id(root)]


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _safe_loader() -> type:
    """yaml.SafeLoader whose integers of more than 4300 digits are a YAML error at their line."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        def construct_yaml_int(self, node: Any) -> int:
            try:
                return super().construct_yaml_int(node)
            except ValueError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the number {node.value[:12]}... has {len(node.value)} digits; no key takes a "
                    "number that large", node.start_mark) from None

    BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)
    return BoundedLoader


def _refuse_huge_numbers(path: Path, root: Any) -> None:
    """A top-level integer past Python's 4300-digit limit, named by its key (nested ones are refused by
    the loader's constructor, by line)."""
    import yaml

    if not isinstance(root, yaml.MappingNode):
        return
    for key_node, value_node in root.value:
        if (isinstance(value_node, yaml.ScalarNode) and value_node.tag == "tag:yaml.org,2002:int"
                and len(value_node.value) > 4300):
            raise UserError(f"{path}:{value_node.start_mark.line + 1}: {key_node.value}: a number of "
                            f"{len(value_node.value)} digits is out of range for every key.")


def _warn_duplicates(path: Path, root: Any) -> None:
    import yaml

    if not isinstance(root, yaml.MappingNode):
        return
    first_line: dict[str, int] = {}
    for key_node, _ in root.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in first_line:
            logger.warning("%s:%d: '%s' is set twice (lines %d and %d); the last one is used, as YAML readers do.",
                           path, line, key_node.value, first_line[key_node.value], line)
        first_line.setdefault(key_node.value, line)


def load_yaml(path: Path, text: str) -> Any:
    """The YAML document of `text`, its aliases bounded, every failure one message with the line."""
    import yaml

    loader = None
    try:
        loader = _safe_loader()(text)  # its reader refuses control characters (a NUL byte) at once
        root = loader.get_single_node()
        if root is None:
            return None
        _expanded_size(root, path)
        _refuse_huge_numbers(path, root)
        _warn_duplicates(path, root)
        return loader.construct_document(root)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise UserError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:  # nesting thousands of levels deep ([[[[...]]]])
        raise UserError(f"{path}: not valid YAML: values nested too deeply for a config.") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_json(path: Path, text: str) -> Any:
    """The JSON value of `text`; a key given twice is logged, the last one used (as json.loads does)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                logger.warning("%s: '%s' is set twice; the last one is used, as JSON readers do.", path, key)
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None
    except ValueError:  # an integer past Python's 4300-digit limit
        raise UserError(f"{path}: a number has more than 4300 digits; no key takes a number that large.") from None
    except RecursionError:
        raise UserError(f"{path}: not valid JSON: values nested too deeply for a config.") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's mapping of key: value, or one UserError naming the file (and line) and the fix."""
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist.")
    text = decode_utf8(path, path.read_bytes())
    data = load_json(path, text) if path.suffix.lower() == ".json" else load_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file must be a mapping of key: value, not {type(data).__name__}.")
    return {str(k): v for k, v in data.items()}
