"""The shape of the code, checked: imports form no cycle, and only the stage table and the stages' own
rooms branch on a stage's name (docs/architecture.md says why)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tunelab.config.stages import STAGE_NAMES, STAGES

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "tunelab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST) -> list[str]:
    """Every tunelab module the code imports when it runs: top-level and inside functions (lazy imports
    close cycles too), but not `if TYPE_CHECKING:` imports, which never run."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            for child in getattr(node, "orelse", []):
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append(submodule if submodule in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [name for name in found if name in MODULES]


def import_graph() -> dict[str, set[str]]:
    return {name: set(_imports(ast.parse(path.read_text(encoding="utf-8")))) - {name}
            for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each a cycle or a knot of them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_import_graph_is_read_from_the_code():
    graph = import_graph()
    assert "tunelab.train.recipe" in graph
    assert "tunelab.config.stages" in graph["tunelab.train.stages"]
    assert "tunelab.train.run.resume" in graph["tunelab.train.recipe"]  # a lazy import inside a function counts


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_tunelab():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


# -- stage names ----------------------------------------------------------------------------------------

#: where a stage may be named in a branch: the table itself and the rooms of the stages
STAGE_HOMES = {PACKAGE / "config" / "stages.py", *(PACKAGE / "train" / "stages").glob("*.py")}


def _stage_literals(node: ast.AST) -> list[str]:
    """Stage names written as string constants in `node` (a constant, or a tuple / list / set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STAGE_NAMES:
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [name for element in node.elts for name in _stage_literals(element)]
    return []


def stage_branches(path: Path) -> list[str]:
    """`x == "kto"`, `stage in ("rm", "dpo")`, `case "ppo":` and dict keys named after stages, in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hits = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Compare):
            names = [n for part in (node.left, *node.comparators) for n in _stage_literals(part)]
        elif isinstance(node, ast.match_case):
            names = [n for sub in ast.walk(node.pattern) if isinstance(sub, ast.MatchValue)
                     for n in _stage_literals(sub.value)]
        elif isinstance(node, ast.Dict):
            names = [n for key in node.keys if key is not None for n in _stage_literals(key)]
        where = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
        hits.extend(f"{where}:{node.lineno}: {name!r}" for name in names)
    return hits


def test_the_branch_finder_sees_a_branch(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(stage):\n    return stage == "kto" or stage in ("rm", "x")\n'
                      'ROUTES = {"ppo": 1}\n', encoding="utf-8")
    assert sorted(stage_branches(sample)) == ["sample.py:2: 'kto'", "sample.py:2: 'rm'", "sample.py:3: 'ppo'"]


def test_only_the_stage_table_and_the_rooms_branch_on_a_stage_name():
    hits = [hit for path in sorted(PACKAGE.rglob("*.py")) if path not in STAGE_HOMES for hit in stage_branches(path)]
    assert hits == [], "branch on a stage name outside config/stages.py and train/stages/: read the stage table"


# -- the rooms -----------------------------------------------------------------------------------------

def test_every_stage_has_exactly_one_room_with_the_same_names():
    from tunelab.train.stages import ROOMS, room_of

    for name in STAGES:
        serving = [room for room in ROOMS if name in room.NAMES]
        assert len(serving) == 1, f"stage {name} is served by {len(serving)} rooms"
        room = room_of(name)
        assert callable(room.check_config) and callable(room.make_collator)
        assert isinstance(room.Trainer, type)
    assert {name for room in ROOMS for name in room.NAMES} == set(STAGES)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_a_room_trainer_is_a_tunelab_trainer(name):
    from tunelab.train.stages import room_of
    from tunelab.train.trainers.base import TunelabTrainer

    assert issubclass(room_of(name).Trainer, TunelabTrainer)
