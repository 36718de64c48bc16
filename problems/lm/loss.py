"""Each model's own training loss, and held-out evaluation with it.

- causal: mean next-token cross-entropy (nats per predicted token); perplexity = exp(loss).
- contrastive (multiple-negatives ranking, as all-MiniLM-L6-v2 was trained): embeddings are mean-pooled over the
  attention mask and L2-normalised; scores S = 20·a pᵀ for the batch's anchors a and positives p (20 is the
  sentence-transformers default scale); loss = cross-entropy of each row of S against its own positive.
  Retrieval accuracy = fraction of anchors whose highest score is their own positive.
Cost: one forward pass (plus one backward for Fisher) per batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONTRASTIVE_SCALE = 20.0


def _embed(model, enc: dict) -> torch.Tensor:
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)


def batch_loss(lm, batch) -> tuple[torch.Tensor, float]:
    """(loss tensor with autograd, number of correct retrievals — 0.0 for a causal LM)."""
    if lm.kind == "causal":
        ids = batch.inputs["input_ids"]
        return lm.model(input_ids=ids, labels=ids).loss, 0.0
    a, p = _embed(lm.model, batch.inputs["anchor"]), _embed(lm.model, batch.inputs["positive"])
    scores = CONTRASTIVE_SCALE * a @ p.T
    target = torch.arange(len(scores))
    return F.cross_entropy(scores, target), float((scores.argmax(1) == target).sum())


def _weight(lm, batch) -> int:
    """How many terms a batch's mean loss averages: predicted tokens (causal) or pairs (contrastive)."""
    if lm.kind == "causal":
        ids = batch.inputs["input_ids"]
        return ids.shape[0] * (ids.shape[1] - 1)
    return len(batch.inputs["anchor"]["input_ids"])


@torch.no_grad()
def evaluate(lm, batches) -> dict:
    """Held-out metrics: eval_loss (term-weighted mean over batches) and perplexity (causal) or
    retrieval_accuracy (contrastive)."""
    total, count, correct = 0.0, 0, 0.0
    for batch in batches:
        loss, hits = batch_loss(lm, batch)
        k = _weight(lm, batch)
        total, count, correct = total + float(loss) * k, count + k, correct + hits
    loss = total / count
    if lm.kind == "causal":
        return {"eval_loss": loss, "perplexity": math.exp(loss)}
    return {"eval_loss": loss, "retrieval_accuracy": correct / count}
