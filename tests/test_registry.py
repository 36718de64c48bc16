"""Registration: by subclassing, by dropping a file into solvers/, and through the entry-point group."""
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import solvers
from problems import synthetic
from solvers import registry

ROOT = Path(__file__).resolve().parents[1]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Add a solver", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_available_and_get_errors():
    names = solvers.available()
    assert names == sorted(names) and {"svd", "fwsvd_row", "fwsvd_col", "fwsvd_two_sided", "separable"} <= set(names)
    with pytest.raises(ValueError, match="unknown solver 'nope'; available solvers: .*svd"):
        solvers.get("nope")
    with pytest.raises(ValueError, match="has no parameter"):
        solvers.get("svd", reg=1.0)


def test_duplicate_name_is_refused():
    with pytest.raises(ValueError, match="taken"):
        class Impostor(solvers.ClosedFormSolver):
            name = "svd"


def test_readme_example_dropped_into_solvers_is_discovered_and_conforms(tmp_path):
    """Copy the packages, add the README's example file, and in a fresh process: discovery, the listing, the
    conformance checks and the throughput benchmarks' solver list see it with no other edit; a batched entry
    point declared on the class puts it in the batched benchmarks too."""
    for pkg in ("solvers", "problems", "bench"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    example = _readme_example()
    (tmp_path / "solvers" / "block_gradient.py").write_text(example)
    batched = example.replace('"block_gradient"', '"block_gradient_batched"').replace(
        "class BlockGradient(", "class BlockGradientBatched(").replace(
        "    monotone = True\n", "    monotone = True\n    solve_batched = staticmethod(lambda A, W, rank, **kw: None)\n")
    (tmp_path / "solvers" / "block_gradient_batched.py").write_text(batched)
    script = textwrap.dedent("""
        import contextlib, io
        import solvers
        from bench.cli import main
        from bench.perf.throughput import batched_solvers, modelled_solvers
        from solvers.testing import check_solver
        assert "block_gradient" in solvers.available(), solvers.available()
        check_solver("block_gradient")
        listing = io.StringIO()
        with contextlib.redirect_stdout(listing):
            assert main(["solvers"]) == 0
        assert "block_gradient " in listing.getvalue() and "step_scale=1.0" in listing.getvalue()
        assert "block_gradient" in modelled_solvers() and "block_gradient" not in batched_solvers()
        assert "block_gradient_batched" in batched_solvers()
        print("ok", solvers.solver_class("block_gradient").__module__)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ok solvers.block_gradient" in out.stdout


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    """A third-party distribution declaring the entry point, found through importlib.metadata."""
    (tmp_path / "my_wlra_plugin.py").write_text(_readme_example().replace('"block_gradient"', '"plugin_bg"'))
    dist = tmp_path / "my_wlra_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-wlra-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nplugin_bg = my_wlra_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_discovered", False)
    try:
        assert "plugin_bg" in solvers.available()
        res = solvers.get("plugin_bg").solve(synthetic.planted(m=12, n=10, rank=2), max_iter=5)
        assert res.solver == "plugin_bg"
    finally:
        registry._REGISTRY.pop("plugin_bg", None)
        sys.modules.pop("my_wlra_plugin", None)


def test_first_use_from_many_threads_at_once_sees_the_whole_registry():
    script = """
import threading
import solvers
start, errors = threading.Barrier(8), []
def first_use():
    start.wait()
    try:
        solvers.get("svd"); solvers.get("als")
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_use) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:1])
"""
    for _ in range(3):  # a fresh process each time: discovery happens once per process
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("0 "), out.stdout
