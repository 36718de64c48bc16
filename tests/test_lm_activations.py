"""Input statistics of tiny Llama / BERT models: the values, the derived sharing, padding, the cache, the problems."""
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import lm_tiny  # noqa: E402
import solvers  # noqa: E402
from problems.lm import fisher, lm_problems  # noqa: E402
from problems.lm.activations import compute_input_statistics, input_statistics  # noqa: E402
from problems.lm.cache import find_cached  # noqa: E402
from problems.lm.text import causal_batches, pair_batches  # noqa: E402


def _reference_qkv_inputs(lm, batches, block):
    """The rows x_t that q/k/v of ``block`` read, from the model's hidden states (padding dropped)."""
    rows = []
    with torch.no_grad():
        for b in batches:
            encs = [b.inputs] if lm.kind == "causal" else [b.inputs["anchor"], b.inputs["positive"]]
            for enc in encs:
                h = lm.model.base_model(**enc, output_hidden_states=True).hidden_states[block]
                if lm.kind == "causal":
                    rows.append(lm.model.model.layers[block].input_layernorm(h).reshape(-1, h.shape[-1]))
                else:
                    rows.append(h[enc["attention_mask"].bool()])
    return torch.cat(rows).double()


@pytest.mark.parametrize("kind", ["causal", "contrastive"])
def test_statistics_are_the_gram_and_mean_magnitude_of_the_real_inputs(kind, text):
    lm = lm_tiny.language_model(kind, source=f"tiny-{kind}")
    batches = (causal_batches(lm.tokenizer, text, 96, seq_len=32, batch_size=2) if kind == "causal"
               else pair_batches(lm.tokenizer, text, 150, batch_size=4))
    names = lm.select("1")
    stats, groups, tokens, seconds = compute_input_statistics(lm, batches, names, progress=False)
    X = _reference_qkv_inputs(lm, batches, 1)
    assert tokens == X.shape[0] == sum(b.n_tokens for b in batches) and seconds > 0
    q = next(n for n in names if lm.linears[n][1] == "q")
    torch.testing.assert_close(stats[q].gram.double(), X.T @ X / len(X), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stats[q].abs_mean.double(), X.abs().mean(0), rtol=1e-4, atol=1e-6)
    for n in names:
        assert stats[n].n == lm.weight(n).shape[1] and stats[n].tokens == tokens


def test_padding_is_excluded_from_pair_statistics(text):
    lm = lm_tiny.language_model("contrastive", source="tiny-contrastive")
    batches = pair_batches(lm.tokenizer, text, 150, batch_size=4)
    masks = [b.inputs[side]["attention_mask"] for b in batches for side in ("anchor", "positive")]
    assert any((m == 0).any() for m in masks)  # the batches do pad
    stats, _, tokens, _ = compute_input_statistics(lm, batches, lm.select("0", "q"), progress=False)
    assert tokens == int(sum(m.sum() for m in masks)) < sum(m.numel() for m in masks)


def test_sharing_is_derived_from_the_forward_pass(text):
    lm = lm_tiny.language_model("causal", source="tiny-causal")
    batches = causal_batches(lm.tokenizer, text, 64, seq_len=32)
    names = lm.select()
    stats, groups, _, _ = compute_input_statistics(lm, batches, names, progress=False)
    share = {(lm.linears[n], lm.linears[groups[n]]) for n in names}
    for block in (0, 1):
        assert {m: g for (b, m), (_, g) in share if b == block} == {
            "q": "q", "k": "q", "v": "q", "o": "o", "gate": "gate", "up": "gate", "down": "down"}
    assert stats[lm.select("0", "k")[0]] is stats[lm.select("0", "q")[0]]

    bert = lm_tiny.language_model("contrastive", source="tiny-contrastive")
    _, groups, _, _ = compute_input_statistics(bert, pair_batches(bert.tokenizer, text, 60), bert.select(),
                                               progress=False)
    shared = {bert.linears[n][1]: bert.linears[g][1] for n, g in groups.items() if bert.linears[n][0] == 0}
    assert shared == {"q": "q", "k": "q", "v": "q", "o": "o", "up": "up", "down": "down"}


def test_cache_round_trips_and_serves_subsets(text, tmp_path):
    lm = lm_tiny.language_model("causal", source="tiny-cache")
    names = lm.select("0,1", "q,k,o,up,gate")
    cache = tmp_path / "cache"
    first = input_statistics(lm, names, text=text, tokens=128, seed=1, cache_dir=cache, progress=False)
    assert not first.cached and first.path.is_file() and first.path.parent.parent.name == "activations"
    again = input_statistics(lm, names, text=text, tokens=128, seed=1, cache_dir=cache, progress=False)
    assert again.cached and again.path == first.path and again.tokens == first.tokens
    assert again.groups == first.groups
    for n in names:
        assert torch.equal(again.inputs[n].gram, first.inputs[n].gram)
        assert torch.equal(again.inputs[n].abs_mean, first.inputs[n].abs_mean)
    k, q = lm.select("1", "k")[0], lm.select("1", "q")[0]
    assert again.inputs[k] is again.inputs[q]
    sub = input_statistics(lm, [k], text=text, tokens=128, seed=1, cache_dir=cache, progress=False)
    assert sub.cached and sub.groups == {k: k} and torch.equal(sub.inputs[k].gram, first.inputs[k].gram)
    # the Fisher's key scheme: another seed, token count, module or model is a miss; Fisher files are not hits
    assert find_cached(cache, lm.source, text, 128, 2, kind="activations") is None
    assert find_cached(cache, lm.source, text, 256, 1, {(0, "q")}, kind="activations") is None
    assert find_cached(cache, lm.source, text, 128, 1, {(0, "down")}, kind="activations") is None
    assert find_cached(cache, "other", text, 128, 1, {(0, "q")}, kind="activations") is None
    assert find_cached(cache, lm.source, text, 128, 1, {(0, "q")}) is None  # kind "fisher"
    uncached = input_statistics(lm, [k], text=text, tokens=128, seed=1, progress=False)
    assert uncached.path is None and not uncached.cached
    torch.testing.assert_close(uncached.inputs[k].gram, first.inputs[k].gram)


def test_lm_problems_carry_the_inputs_and_svd_llm_solves_them(text):
    lm = lm_tiny.language_model("causal", source="tiny-problems")
    names = lm.select("0-1", "q,down")
    F = fisher(lm, names, text=text, tokens=64, progress=False)
    X = input_statistics(lm, names, text=text, tokens=64, progress=False)
    problems = lm_problems(lm, names, F, inputs=X, param_ratio=0.25)
    plain = lm_problems(lm, names, F, param_ratio=0.25)
    assert all(p.inputs is not None and p.meta["input_tokens"] == X.tokens for p in problems)
    assert all(p.inputs is None for p in plain)
    for p in problems:
        act = {s: solvers.get(s).solve(p) for s in ("svd", "asvd", "svd_llm")}
        errors = {s: p.activation_error(r.U, r.V) for s, r in act.items()}
        assert errors["svd_llm"] <= min(errors.values()) + 1e-6, errors


def _real_inputs_cached() -> bool:
    from problems import lm as lmpkg
    from problems.lm.models import builtin_source

    if not lmpkg.suite_is_cached("smollm2-sample"):
        return False
    pairs = {(b, m) for b in (0, 14, 29) for m in ("q", "o", "gate", "down")}
    return find_cached(lmpkg.default_cache_dir(), builtin_source("smollm2"), lmpkg.FISHER_TEXT,
                       lmpkg.fisher_tokens(), 0, pairs, kind="activations") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _real_inputs_cached(), reason="SmolLM2 sample Fisher and input statistics not cached")
def test_load_suite_attaches_the_real_input_statistics():
    from problems import lm as lmpkg

    _, problems = lmpkg.load_suite("smollm2-sample", inputs=True, progress=False)
    assert len(problems) == 12 and all(p.inputs is not None and p.inputs.n == p.shape[1] for p in problems)
    down = next(p for p in problems if p.name == "smollm2.0.down")
    assert down.inputs.n == 1536 and down.inputs.tokens == down.meta["fisher_tokens"]
    res = solvers.get("svd_llm").solve(down)
    assert res.info["whitening"] in ("cholesky", "eigh") and 0 < down.activation_error(res.U, res.V) < 1
