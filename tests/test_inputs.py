"""Input statistics on problems: validation, the activation objective, file round trips, the run digest."""
import dataclasses
import math

import numpy as np
import pytest
import torch

import solvers
from problems import InputStatistics, Problem, load, save, synthetic


def _stats(n, seed=0, tokens=None):
    return synthetic.input_statistics(n, seed=seed, tokens=tokens)


def test_input_statistics_validate_what_a_gram_must_be():
    good = _stats(5)
    with pytest.raises(ValueError, match="square"):
        InputStatistics(np.ones((3, 4)), np.ones(3))
    with pytest.raises(ValueError, match="3 entries but the gram is 5×5"):
        InputStatistics(good.gram, np.ones(3))
    with pytest.raises(ValueError, match="not symmetric"):
        InputStatistics(np.triu(np.ones((3, 3))), np.ones(3))
    with pytest.raises(ValueError, match="non-negative diagonal"):
        InputStatistics(-np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="NaN/Inf"):
        InputStatistics(np.full((2, 2), np.nan), np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        InputStatistics(np.eye(2), -np.ones(2))
    with pytest.raises(TypeError, match="input gram must be numeric"):
        InputStatistics(np.eye(2).astype(str), np.ones(2))
    with pytest.raises(ValueError, match="tokens"):
        InputStatistics(np.eye(2), np.ones(2), tokens=-1)
    slightly = good.gram.clone()
    slightly[0, 1] += 1e-9
    assert torch.equal(InputStatistics(slightly, good.abs_mean).gram, InputStatistics(slightly, good.abs_mean).gram.T)


def test_problem_checks_inputs_and_casts_them_to_its_dtype():
    p = synthetic.planted(m=12, n=8, rank=2, dtype="float32")
    with pytest.raises(ValueError, match="8 columns"):
        dataclasses.replace(p, inputs=_stats(7))
    with pytest.raises(TypeError, match="InputStatistics"):
        dataclasses.replace(p, inputs={"gram": np.eye(8)})
    q = dataclasses.replace(p, inputs=_stats(8))
    assert q.inputs.gram.dtype == torch.float32 == q.inputs.abs_mean.dtype
    assert q.with_rank(3).inputs is q.inputs and "with inputs" in repr(q)


def test_activation_error_is_the_relative_output_error_on_the_calibration_inputs():
    rng = np.random.default_rng(0)
    m, n, T = 9, 6, 40
    X = rng.standard_normal((n, T)) * np.exp(rng.standard_normal(n))[:, None]
    A = rng.standard_normal((m, n))
    p = Problem(A, np.ones((m, n)), 2, inputs=InputStatistics(X @ X.T / T, np.abs(X).mean(1), T))
    U, V = rng.standard_normal((m, 2)), rng.standard_normal((n, 2))
    want = np.linalg.norm((A - U @ V.T) @ X) ** 2 / np.linalg.norm(A @ X) ** 2
    assert p.activation_error(U, V) == pytest.approx(want, rel=1e-12)
    assert p.activation_error(np.zeros((m, 1)), np.zeros((n, 1))) == pytest.approx(1.0, rel=1e-14)
    assert p.activation_norm == pytest.approx(np.linalg.norm(A @ X) ** 2 / T, rel=1e-12)
    with pytest.raises(ValueError, match="factors must be"):
        p.activation_error(U, V[:3])
    with pytest.raises(ValueError, match="no input statistics"):
        Problem(A, np.ones((m, n)), 2).activation_error(U, V)


def test_synthetic_inputs_are_seeded_and_singular_below_n_tokens():
    a, b, c = _stats(10, seed=1), _stats(10, seed=1), _stats(10, seed=2)
    assert torch.equal(a.gram, b.gram) and not torch.equal(a.gram, c.gram) and a.tokens == 40
    assert torch.linalg.eigvalsh(a.gram).min() > 0
    assert torch.linalg.matrix_rank(_stats(10, tokens=4).gram) == 4
    p = synthetic.with_inputs(synthetic.constant(m=12, n=10, rank=2), seed=1)
    assert torch.equal(p.inputs.gram, a.gram) and p.meta["inputs"]["seed"] == 1 and p.f_star is not None


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_inputs_round_trip_through_files(tmp_path, suffix):
    p = synthetic.with_inputs(synthetic.separable(m=10, n=7, rank=2, dtype="float32"), seed=3)
    q = load(save(p, tmp_path / f"p{suffix}"))
    assert torch.equal(q.inputs.gram, p.inputs.gram) and torch.equal(q.inputs.abs_mean, p.inputs.abs_mean)
    assert q.inputs.tokens == p.inputs.tokens and q.inputs.gram.dtype == torch.float32
    plain = load(save(synthetic.constant(m=5, n=4, rank=1), tmp_path / f"plain{suffix}"))
    assert plain.inputs is None


def test_a_file_with_half_the_input_statistics_is_refused(tmp_path):
    p = synthetic.constant(m=5, n=4, rank=1)
    np.savez(tmp_path / "half.npz", A=p.A.numpy(), W=p.W.numpy(), rank=1, input_gram=np.eye(4))
    from problems import ProblemFileError

    with pytest.raises(ProblemFileError, match="input_abs_mean"):
        load(tmp_path / "half.npz")
    np.savez(tmp_path / "bad.npz", A=p.A.numpy(), W=p.W.numpy(), rank=1, input_gram=np.eye(3),
             input_abs_mean=np.ones(3))
    with pytest.raises(ValueError, match="4 columns"):
        load(tmp_path / "bad.npz")


def test_the_run_digest_sees_the_inputs():
    from bench.runner import problem_digest

    p = synthetic.constant(m=8, n=6, rank=2)
    with_a, with_b = synthetic.with_inputs(p, seed=0), synthetic.with_inputs(p, seed=1)
    digests = {problem_digest(x) for x in (p, with_a, with_b)}
    assert len(digests) == 3 and problem_digest(synthetic.with_inputs(p, seed=0)) == problem_digest(with_a)
    assert math.isfinite(with_a.activation_norm)


def test_a_run_records_the_activation_error_when_its_problem_has_inputs():
    from bench.runner import plan
    from bench.task import execute, failure_rows

    bare = synthetic.heavy_tailed(m=12, n=8, rank=2)
    full = synthetic.with_inputs(bare, seed=0)
    tasks, skipped = plan([bare, full], "svd,svd_llm")
    assert [(t.solver_name, t.problem.inputs is not None) for t in tasks] == [("svd", False), ("svd", True),
                                                                                ("svd_llm", True)]
    assert skipped and skipped[0][:2] == ("svd_llm", bare.name) and "input" in skipped[0][2]
    rows = [execute(t) for t in tasks]
    assert all(math.isnan(a) for a in rows[0]["activation_error"])
    res = {t.solver_name: solvers.get(t.solver_name).solve(full) for t in tasks[1:]}
    for t, r in zip(tasks[1:], rows[1:]):
        assert r["activation_error"][-1] == pytest.approx(full.activation_error(res[t.solver_name].U,
                                                                                res[t.solver_name].V), rel=1e-9)
    assert rows[2]["activation_error"][-1] < rows[1]["activation_error"][-1]  # svd_llm's own objective
    assert math.isnan(failure_rows(tasks[1], "error", "x", 0.0)["activation_error"][0])
