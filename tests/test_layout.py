"""The package's layout: no import cycle between its modules, no module over 450 lines.

The imports are read with :mod:`ast`, not executed: every ``import`` and
``from ... import`` in a module, at any depth (a lazy import inside a function
still ties two modules together), that names a module of ``mmdet_ghm`` is an
edge from the importing module to that module. ``from .pkg import name``
counts as an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Optional, Set

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = 'mmdet_ghm'
MAX_LINES = 450


def package_modules(root: str = REPO, package: str = PACKAGE) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` file of ``package`` under ``root``."""
    modules = {}
    for dirpath, dirnames, filenames in os.walk(osp.join(root, package)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(('.', '__')))
        for name in sorted(filenames):
            if not name.endswith('.py'):
                continue
            parts = osp.relpath(osp.join(dirpath, name), root)[:-3].split(os.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            modules['.'.join(parts)] = osp.join(dirpath, name)
    return modules


def _resolve(module: str, is_package: bool, level: int, target: Optional[str]) -> str:
    """The absolute name of ``from <level dots><target> import ...`` in ``module``."""
    if level == 0:
        return target or ''
    base = module.split('.')
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return '.'.join(base + ([target] if target else []))


def imports_of(module: str, path: str, modules: Dict[str, str]) -> Set[str]:
    """The modules of the package that ``module`` (file ``path``) imports."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith('__init__.py')
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            names = [f'{source}.{alias.name}' if f'{source}.{alias.name}' in modules
                     else source for alias in node.names]
        else:
            continue
        for name in names:
            # ``import a.b.c`` binds a module of the package only if it exists
            while name and name not in modules:
                name = name.rpartition('.')[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: str = REPO, package: str = PACKAGE) -> Dict[str, Set[str]]:
    """Module -> the package modules it imports."""
    modules = package_modules(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or None (depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert 'mmdet_ghm.study.records' in graph and graph['mmdet_ghm.study.runner'], \
        'the import graph missed the package'
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_no_module_of_the_package_is_over_450_lines():
    long = {}
    for name, path in package_modules().items():
        with open(path, encoding='utf-8') as f:
            lines = sum(1 for _ in f)
        if lines > MAX_LINES:
            long[name] = lines
    assert not long, f'modules over {MAX_LINES} lines (split them along a seam): {long}'


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize('files, cycle', [
    # a lazy import inside a function is an edge too
    ({'pkg/__init__.py': '', 'pkg/a.py': 'from .b import f\n',
      'pkg/b.py': 'def f():\n    from .a import g\n'}, ['pkg.a', 'pkg.b', 'pkg.a']),
    # absolute imports, and ``from pkg import module``
    ({'pkg/__init__.py': '', 'pkg/sub/__init__.py': '', 'pkg/sub/x.py': 'import pkg.y\n',
      'pkg/y.py': 'from pkg.sub import x\n'}, ['pkg.sub.x', 'pkg.y', 'pkg.sub.x']),
    # ``from .. import`` out of a subpackage
    ({'pkg/__init__.py': '', 'pkg/sub/__init__.py': 'from .. import z\n',
      'pkg/z.py': 'from .sub import thing\n'}, ['pkg.sub', 'pkg.z', 'pkg.sub']),
])
def test_a_cycle_is_found(tmp_path, files, cycle):
    _write(tmp_path, files)
    assert find_cycle(import_graph(str(tmp_path), 'pkg')) == cycle


def test_imports_without_a_cycle_pass(tmp_path):
    _write(tmp_path, {'pkg/__init__.py': 'from .a import f\n', 'pkg/a.py': 'from .b import g\n',
                      'pkg/b.py': 'import os\nfrom . import c\n', 'pkg/c.py': 'import json\n',
                      'pkg/d.py': 'import pkg.a.nope\n'})
    graph = import_graph(str(tmp_path), 'pkg')
    assert graph == {'pkg': {'pkg.a'}, 'pkg.a': {'pkg.b'}, 'pkg.b': {'pkg.c'}, 'pkg.c': set(),
                     'pkg.d': {'pkg.a'}}
    assert find_cycle(graph) is None
