"""The dependency order is one-way: problems ← solvers ← bench ← reports ← the CLI.

- ``problems`` (data, its objective, files, suites) imports none of the other packages;
- ``solvers`` imports ``problems`` only;
- ``bench`` (runner, worker, store, perf tools, asv suite) imports ``problems`` and ``solvers``, never ``reports``;
- ``reports`` reads the store through its public reader ``bench.results`` and imports nothing else of ``bench``;
- the CLI (``bench.cli`` and ``bench.commands``) is the top: it may import everything.

Checked twice: statically (every import statement of every module, those inside functions too) and at run time
(importing a layer in a fresh interpreter loads no module of a layer above it).
"""
import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("problems", "solvers", "bench", "reports")
CLI = ("bench.cli", "bench.commands", "bench.__main__")
ALLOWED = {"problems": set(), "solvers": {"problems"}, "bench": {"problems", "solvers"},
           "reports": {"problems", "solvers", "bench.results"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """Absolute names imported by the file (relative imports resolved; ``from a import b`` gives a.b, which is
    the module a.b or a name inside a), with line numbers."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{node.module}" if node.module else parent
            yield from ((f"{base}.{alias.name}", node.lineno) for alias in node.names)


def _layer(module: str) -> str | None:
    if module.startswith(CLI):
        return "cli"
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def _allowed(importer: str, imported: str) -> bool:
    layer, target = _layer(importer), _layer(imported)
    if target is None or layer == "cli" or target == layer and target != "bench":
        return True
    if target == "cli":
        return False
    if layer == target:  # bench within bench
        return True
    return any(imported == a or imported.startswith(a + ".") for a in ALLOWED[layer])


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            importer = _module_name(path)
            for imported, line in _imports(path):
                if not _allowed(importer, imported):
                    violations.append(f"{path.relative_to(ROOT)}:{line} ({importer}) imports {imported}")
    assert not violations, "\n".join(violations)


def test_the_rule_itself_catches_upward_imports():
    assert not _allowed("problems.problem", "solvers.objective")
    assert not _allowed("solvers.base", "bench.runner")
    assert not _allowed("bench.runner", "reports")
    assert not _allowed("reports.data", "bench.runner") and _allowed("reports.data", "bench.results")
    assert not _allowed("bench.runner", "bench.commands.run")
    assert _allowed("bench.commands.quickstart", "reports") and _allowed("solvers.base", "problems.problem")


@pytest.mark.parametrize("imports, forbidden", [
    ("import problems, problems.lm, problems.suites; problems.suites.available_suites()",
     ("solvers", "bench", "reports")),
    ("import solvers; solvers.available(); import solvers.testing", ("bench", "reports")),
    ("import bench.runner, bench.worker, bench.executors, bench.perf.gpu_check, bench.perf.compare_solvers",
     ("reports", "bench.cli", "bench.commands")),
    ("import reports", ("bench.runner", "bench.worker", "bench.cli", "bench.commands")),
])
def test_importing_a_layer_loads_nothing_above_it(imports, forbidden):
    script = textwrap.dedent(f"""
        import sys
        {imports}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {PACKAGES!r})
        print("\\n".join(loaded))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout.split()
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not bad, f"{imports!r} loaded {bad}"
