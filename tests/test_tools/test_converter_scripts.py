"""The converter scripts keep only their command line.

Renaming tables, layout detection and checks live in the package, beside the
model or algorithm they describe (``bcssl_mm/models/backbones/*``,
``bcssl_mm/models/algorithms/checkpoint_parts.py``) on the engine of
``bcssl_mm/utils/state_dict_remap.py``; a script under
``tools/model_converters`` holds imports, ``get_args_parser`` and ``main``.
"""
import ast
from pathlib import Path
from typing import List

import pytest

from conftest import ROOT

CONVERTERS = sorted((ROOT / 'tools' / 'model_converters').glob('*.py'))
CLI_FUNCTIONS = ('get_args_parser', 'parse_args', 'main')


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(
        node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == '__main__':`` whose body only calls."""
    return (isinstance(node, ast.If)
            and ast.unparse(node.test) == "__name__ == '__main__'"
            and not node.orelse and all(
                isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                for s in node.body))


def non_cli_code(source: str) -> List[str]:
    """What a converter script must not hold: top-level statements other
    than the docstring, imports, the CLI functions and the ``__main__``
    guard (tables, classes, helpers), and functions or classes nested in the
    CLI functions. One ``line N: code`` entry each."""
    found = []
    for i, node in enumerate(ast.parse(source).body):
        if (i == 0 and _is_docstring(node)) or isinstance(
                node, (ast.Import, ast.ImportFrom)) or _is_main_guard(node):
            continue
        if isinstance(node, ast.FunctionDef) and node.name in CLI_FUNCTIONS:
            found += [
                f'line {n.lineno}: {ast.unparse(n).splitlines()[0]}'
                for n in ast.walk(node)
                if n is not node and isinstance(n, (ast.FunctionDef,
                                                    ast.AsyncFunctionDef,
                                                    ast.ClassDef, ast.Lambda))
            ]
            continue
        found.append(
            f'line {node.lineno}: {ast.unparse(node).splitlines()[0]}')
    return found


def test_the_checker_finds_tables_and_helpers():
    source = '''"""A converter."""
import re

RULES = [('a', 'b')]


class Layout:
    pass


def detect(state_dict):
    return 'x'


def main(args):
    def rename(key):
        return key
    return rename


if __name__ == '__main__':
    main(None)
'''
    assert non_cli_code(source) == [
        "line 4: RULES = [('a', 'b')]", 'line 7: class Layout:',
        'line 11: def detect(state_dict):', 'line 16: def rename(key):'
    ]


def test_every_converter_is_checked():
    names = {p.name for p in CONVERTERS}
    assert {
        'bcssl_fork_to_mmpretrain.py', 'convnext_to_bcssl.py',
        'extract_backbone.py', 'mae_to_mmpretrain.py'
    } <= names


@pytest.mark.parametrize('path', CONVERTERS, ids=lambda p: p.name)
def test_converter_keeps_only_argparse_and_main(path):
    source = path.read_text()
    assert non_cli_code(source) == [], (
        f'{path.relative_to(ROOT)}: move tables and helpers into bcssl_mm '
        '(beside the model or algorithm they describe)')
    defined = {
        n.name
        for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)
    }
    assert {'get_args_parser', 'main'} <= defined


def imported_modules(path: Path, package: str) -> List[str]:
    """Absolute names of the modules (and ``from X import name``: also
    ``X.name``) that the file ``path`` of ``package`` imports."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')[:len(package.split('.')) -
                                           node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            names += [base] + [f'{base}.{a.name}' for a in node.names]
    return names


def test_utils_import_nothing_of_models():
    """The renaming engine and the other utilities are leaves: no module of
    ``bcssl_mm/utils`` imports ``bcssl_mm.models``, so that every model
    file can import them without a cycle."""
    utils = ROOT / 'bcssl_mm' / 'utils'
    assert 'bcssl_mm.models.utils' in imported_modules(
        ROOT / 'bcssl_mm' / 'models' / 'algorithms' / 'checkpoint_parts.py',
        'bcssl_mm.models.algorithms')
    upward = {
        path.name: [
            m for m in imported_modules(path, 'bcssl_mm.utils')
            if m == 'bcssl_mm.models' or m.startswith('bcssl_mm.models.')
        ]
        for path in sorted(utils.glob('*.py'))
    }
    assert 'state_dict_remap.py' in upward
    assert {k: v for k, v in upward.items() if v} == {}
