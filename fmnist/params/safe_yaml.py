"""params.yaml as data, read as DVC reads it (ruamel.yaml, YAML 1.2), refusing in one line what loaders
take silently or choke on.

A key written twice (ruamel refuses it too, but names neither the key's path nor its first line),
an alias that contains itself, aliases nested to expand exponentially ("billion laughs"), and
bytes that are not UTF-8. The node graph is checked before anything is built from it, so checking
costs time and memory in proportion to the file, never to what it would expand to.
"""

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fmnist.core.errors import ConfigError

MAX_VALUES = 100_000  # scalars, lists and mappings after aliases are expanded; params.yaml has about 200


def load(text: bytes, name: str = "params.yaml"):
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as error:
        line = text[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{name}: line {line}: not UTF-8 (byte 0x{text[error.start]:02x}); save it as UTF-8"
        ) from None
    reader = YAML(typ="safe", pure=True)
    try:
        node = reader.compose(decoded)
        if node is not None:
            check(node, name)
        return None if node is None else reader.constructor.construct_document(node)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # where the parser stopped, counted from 1 as editors do
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{name}: {where}not valid YAML ({reason})") from None
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply to be settings") from None


def check(root: Node, name: str) -> None:
    """Refuse duplicate keys and aliases that recurse or expand past MAX_VALUES."""
    sizes: dict[int, int] = {}  # expanded size of each node checked so far, by id: aliases share nodes
    open_nodes: set[int] = set()  # the nodes on the path from the root: meeting one again is a cycle

    def size(node: Node, path: str) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(f"{name}: line {node.start_mark.line + 1}: an alias that contains itself")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, MappingNode):
            duplicates(node, name, path)
            children = [(child, f"{path}{key.value}.") for key, value in node.value for child in (key, value)]
        else:
            children = [(child, path) for child in node.value] if isinstance(node, SequenceNode) else []
        for child, where in children:
            total += size(child, where)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"{name}: line {node.start_mark.line + 1}: expands to more than {MAX_VALUES:,} values "
                    "(aliases nested in aliases?)"
                )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, "")


def duplicates(node: MappingNode, name: str, path: str) -> None:
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode):
            continue
        line = key.start_mark.line + 1
        if key.value in seen:
            raise ConfigError(
                f"{name}: {path}{key.value} written twice, on lines {seen[key.value]} and {line} (keep one)"
            )
        seen[key.value] = line
