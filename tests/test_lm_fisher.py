"""Fisher of tiny Llama / BERT models: the value, the cache, the text batching and the model's layer names."""
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import lm_tiny  # noqa: E402
from problems.lm.fisher import compute_fisher, find_cached, fisher  # noqa: E402
from problems.lm.loss import batch_loss  # noqa: E402
from problems.lm.text import causal_batches, pair_batches  # noqa: E402


def _manual_fisher(lm, batches, names):
    """Mean over batches of squared gradients, by plain backward() on the whole model."""
    acc = {n: 0.0 for n in names}
    for b in batches:
        lm.model.zero_grad()
        batch_loss(lm, b)[0].backward()
        for n in names:
            acc[n] = acc[n] + lm.weight(n).grad.detach() ** 2
    return {n: a / len(batches) for n, a in acc.items()}


@pytest.mark.parametrize("kind", ["causal", "contrastive"])
def test_fisher_is_mean_squared_gradient(kind, text):
    lm = lm_tiny.language_model(kind)
    batches = (causal_batches(lm.tokenizer, text, 96, seq_len=32, batch_size=1) if kind == "causal"
               else pair_batches(lm.tokenizer, text, 100, batch_size=4))
    assert len(batches) >= 2
    names = lm.select("1", "q,down")
    got, tokens, seconds = compute_fisher(lm, batches, names, progress=False)
    want = _manual_fisher(lm, batches, names)
    for n in names:
        assert got[n].shape == lm.weight(n).shape
        assert (got[n] > 0).any()
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-12)
    assert tokens == sum(b.n_tokens for b in batches) and seconds > 0
    # compute_fisher leaves the model's requires_grad flags as they were
    assert all(p.requires_grad for p in lm.model.parameters())


def test_every_block_linear_is_named_and_gets_fisher(text):
    for kind, modules in [("causal", {"q", "k", "v", "o", "gate", "up", "down"}),
                          ("contrastive", {"q", "k", "v", "o", "up", "down"})]:
        lm = lm_tiny.language_model(kind)
        assert {m for _, m in lm.linears.values()} == modules
        assert {b for b, _ in lm.linears.values()} == {0, 1}
        names = lm.select()
        res = fisher(lm, names, text=text, tokens=100, progress=False)
        assert all(torch.isfinite(res.fisher[n]).all() and res.fisher[n].sum() > 0 for n in names)
        assert res.path is None and not res.cached and res.tokens_per_second > 0


def test_fisher_cache_hits_same_key_and_subsets_only(text, tmp_path):
    lm = lm_tiny.language_model("causal")
    names = lm.select("0,1", "q,o")
    first = fisher(lm, names, text=text, tokens=128, seed=1, cache_dir=tmp_path / "c", progress=False)
    assert not first.cached and first.path.is_file()
    again = fisher(lm, names[:1], text=text, tokens=128, seed=1, cache_dir=tmp_path / "c", progress=False)
    assert again.cached and again.path == first.path and again.tokens == first.tokens
    torch.testing.assert_close(again.fisher[names[0]], first.fisher[names[0]], rtol=0, atol=0)
    # another seed, token count or a layer not computed is a miss
    assert find_cached(tmp_path / "c", lm.source, text, 128, 2) is None
    assert find_cached(tmp_path / "c", lm.source, text, 256, 1, {(0, "q")}) is None
    assert find_cached(tmp_path / "c", lm.source, text, 128, 1, {(0, "gate")}) is None
    assert find_cached(tmp_path / "c", lm.source, text, 128, 1, {(1, "o")}) == first.path
    assert find_cached(tmp_path / "c", lm.source, text, 128, 1) is None  # not every Linear is cached
    assert find_cached(tmp_path / "c", "other-model", text, 128, 1, {(0, "q")}) is None


def test_causal_batches_round_up_to_blocks_and_are_seeded(text):
    tok = lm_tiny.tokenizer()
    b = causal_batches(tok, text, 100, seq_len=32, batch_size=2, seed=0)
    assert sum(x.n_tokens for x in b) == 128 and b[0].inputs["input_ids"].shape == (2, 32)
    again = causal_batches(tok, text, 100, seq_len=32, batch_size=2, seed=0)
    other = causal_batches(tok, text, 100, seq_len=32, batch_size=2, seed=1)
    assert torch.equal(b[0].inputs["input_ids"], again[0].inputs["input_ids"])
    assert not torch.equal(b[0].inputs["input_ids"], other[0].inputs["input_ids"])
    with pytest.raises(ValueError, match="asked for"):
        causal_batches(tok, text, 10**6)


def test_pair_batches_pair_consecutive_sentences(text):
    b = pair_batches(lm_tiny.tokenizer(), text, 50, batch_size=4)
    assert sum(x.n_tokens for x in b) >= 50
    assert b[0].inputs["anchor"]["input_ids"].shape[0] == 4 == b[0].inputs["positive"]["input_ids"].shape[0]
    with pytest.raises(ValueError, match="only"):
        pair_batches(lm_tiny.tokenizer(), text, 10**6)


def test_layer_and_module_selection_errors():
    lm = lm_tiny.language_model("causal")
    assert lm.select("1", "down") == ["model.layers.1.mlp.down_proj"]
    with pytest.raises(ValueError, match="no Linear layer"):
        lm.select("5")
    with pytest.raises(ValueError, match="unknown module"):
        lm.select("0", "qq")
    with pytest.raises(ValueError, match="bad --layers"):
        lm.select("x-y")
    assert math.isfinite(len(lm.select("0-1")))
