"""Replacing Linear layers by factors, evaluating, and the LM problem builder, on tiny Llama / BERT models."""
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import lm_tiny  # noqa: E402
import solvers  # noqa: E402
from problems.lm.build import lm_problems  # noqa: E402
from problems.lm.compress import FactorizedLinear, compressed_metrics, n_params, replace_linears  # noqa: E402
from problems.lm.fisher import fisher  # noqa: E402
from problems.lm.loss import batch_loss, evaluate  # noqa: E402
from problems.lm.text import causal_batches, pair_batches  # noqa: E402
from problems.problem import rank_for_param_ratio  # noqa: E402


def _solve_all(problems, solver, ratio):
    """({layer name: (U, V)}, [rel_error per layer]) of ``solver`` on every problem at ratio ``ratio``."""
    fits = {p.meta["name"]: solvers.get(solver).solve(p.with_rank(rank_for_param_ratio(*p.shape, ratio)))
            for p in problems}
    return {n: (r.U, r.V) for n, r in fits.items()}, [r.rel_error for r in fits.values()]


def _exact_factors(lm, names):
    out = {}
    for n in names:
        U, S, Vh = torch.linalg.svd(lm.weight(n).detach(), full_matrices=False)
        out[n] = (U * S, Vh.T)
    return out


def test_exact_factors_leave_outputs_unchanged_and_original_untouched(text):
    lm = lm_tiny.language_model("causal")
    names = lm.select("0-1", "q,gate,down")
    before = {n: lm.weight(n).detach().clone() for n in names}
    small = replace_linears(lm.model, _exact_factors(lm, names))
    ids = causal_batches(lm.tokenizer, text, 64, seq_len=32, batch_size=2)[0].inputs["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(small(ids).logits, lm.model(ids).logits, rtol=1e-4, atol=1e-4)
    assert isinstance(small.get_submodule(names[0]), FactorizedLinear)
    assert all(isinstance(lm.model.get_submodule(n), torch.nn.Linear) for n in names)
    assert all(torch.equal(lm.weight(n), before[n]) for n in names)


def test_rank_r_factors_count_parameters():
    lm = lm_tiny.language_model("causal")
    name = "model.layers.0.mlp.down_proj"  # 32 × 48
    U, V = torch.randn(32, 5), torch.randn(48, 5)
    small = replace_linears(lm.model, {name: (U, V)})
    assert n_params(lm.model) - n_params(small) == 32 * 48 - 5 * (32 + 48)
    layer = small.get_submodule(name)
    x = torch.randn(3, 48)
    torch.testing.assert_close(layer(x), x @ V @ U.T)
    with pytest.raises(ValueError, match="shapes"):
        replace_linears(lm.model, {name: (V, U)})


def test_bias_is_kept_in_bert_layers():
    lm = lm_tiny.language_model("contrastive")
    name = "encoder.layer.0.intermediate.dense"
    old = lm.model.get_submodule(name)
    (U, V), = _exact_factors(lm, [name]).values()
    new = replace_linears(lm.model, {name: (U, V)}).get_submodule(name)
    x = torch.randn(4, old.in_features)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), rtol=1e-4, atol=1e-5)


def test_causal_evaluation_is_token_weighted_loss(text):
    lm = lm_tiny.language_model("causal")
    batches = causal_batches(lm.tokenizer, text, 96, seq_len=32, batch_size=2)
    got = evaluate(lm, batches)
    with torch.no_grad():
        losses = [(float(batch_loss(lm, b)[0]), b.inputs["input_ids"].shape[0] * 31) for b in batches]
    want = sum(l * k for l, k in losses) / sum(k for _, k in losses)
    assert got["eval_loss"] == pytest.approx(want, rel=1e-6)
    assert got["perplexity"] == pytest.approx(math.exp(want), rel=1e-6)
    assert got["eval_loss"] > math.log(len(lm.tokenizer)) * 0.5  # an untrained model is near-uniform


def test_contrastive_evaluation_reports_retrieval_accuracy(text):
    lm = lm_tiny.language_model("contrastive")
    batches = pair_batches(lm.tokenizer, text, 100, batch_size=4)
    m = evaluate(lm, batches)
    assert set(m) == {"eval_loss", "retrieval_accuracy"} and 0 <= m["retrieval_accuracy"] <= 1
    assert m["eval_loss"] > 0


def test_problems_compress_and_evaluate_end_to_end(text):
    lm = lm_tiny.language_model("causal")
    names = lm.select("0,1", "q,up")
    res = fisher(lm, names, text=text, tokens=64, progress=False)
    problems = lm_problems(lm, names, res, param_ratio=0.5, text=text)
    assert [p.meta["name"] for p in problems] == names
    for p in problems:
        assert p.W.mean().item() == pytest.approx(1.0, rel=1e-5)
        assert p.meta["fisher_mean"] == pytest.approx(float(res.fisher[p.meta["name"]].mean()), rel=1e-6)
        assert p.rank == int(0.5 * p.shape[0] * p.shape[1] / sum(p.shape))
        assert torch.equal(p.A, lm.weight(p.meta["name"]).detach())
    batches = causal_batches(lm.tokenizer, text, 64, seq_len=32, batch_size=2)
    dense = compressed_metrics(lm, {}, batches)
    full, errors = _solve_all(problems, "svd", 10.0)  # rank = min(m, n): exact
    assert all(e < 1e-8 for e in errors)
    assert compressed_metrics(lm, full, batches)["eval_loss"] == pytest.approx(dense["eval_loss"], abs=1e-4)
    low, errors = _solve_all(problems, "fwsvd_row", 0.25)
    m = compressed_metrics(lm, low, batches)
    assert m["n_params"] < dense["n_params"] and all(0 < e < 1 for e in errors)
    assert m["eval_loss"] != dense["eval_loss"]
    units = m["units"]  # per 32-token block: the loss is their term-weighted mean
    assert len(units.loss) == 2 and m["eval_loss"] == pytest.approx(units.loss.sum() / units.terms.sum())
