"""The real SmolLM2 package end to end (slow: dequantising the GGUF takes ~20 s): load, cache, Fisher of one
layer on a few hundred tokens, held-out perplexity of the real weights."""
import math

import pytest
import torch

from problems import lm as lmpkg

pytestmark = pytest.mark.slow


@pytest.mark.skipif(bool(lmpkg.suite_unavailable("smollm2-sample")),
                    reason=str(lmpkg.suite_unavailable("smollm2-sample")))
def test_smollm2_loads_offline_caches_and_gives_fisher(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = lmpkg.load_model("smollm2", tmp_path)  # from the GGUF, then written to the cache
    assert len(lm.linears) == 210 and lm.kind == "causal"
    name = "model.layers.29.self_attn.q_proj"
    assert tuple(lm.weight(name).shape) == (576, 576) and lm.weight(name).dtype == torch.float32
    again = lmpkg.load_model("smollm2", tmp_path)  # from the fp32 safetensors cache
    assert torch.equal(again.weight(name), lm.weight(name))
    assert again.model.lm_head.weight.data_ptr() == again.model.model.embed_tokens.weight.data_ptr()

    res = lmpkg.fisher(lm, [name], tokens=256, cache_dir=tmp_path, progress=False)
    F = res.fisher[name]
    assert res.tokens == 256 and F.shape == (576, 576) and torch.isfinite(F).all() and (F > 0).all()
    (problem,) = lmpkg.lm_problems(lm, [name], res)
    assert problem.name == "smollm2.29.q" and problem.rank == 144

    from problems.lm.loss import evaluate
    from problems.lm.text import batches_for

    metrics = evaluate(lm, batches_for(lm, lmpkg.EVAL_TEXT, 256))
    assert math.isfinite(metrics["eval_loss"]) and metrics["perplexity"] < 100  # trained weights, not noise
