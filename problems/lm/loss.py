"""Each model's own training loss, and held-out evaluation with it.

- causal: mean next-token cross-entropy (nats per predicted token); perplexity = exp(loss).
- contrastive (multiple-negatives ranking, as all-MiniLM-L6-v2 was trained): embeddings are mean-pooled over the
  attention mask and L2-normalised; scores S = 20·a pᵀ for the batch's anchors a and positives p (20 is the
  sentence-transformers default scale); loss = cross-entropy of each row of S against its own positive.
  Retrieval accuracy = fraction of anchors whose highest score is their own positive.
Cost: one forward pass (plus one backward for Fisher) per batch.

Held-out metrics are ratios of sums over *evaluation units*, so that their uncertainty can be estimated by
resampling units (``problems.lm.bootstrap``): a causal unit is one block of ``seq_len`` tokens (its losses do
not depend on the other blocks of its batch), a contrastive unit is one whole batch (its pairs are each
other's negatives).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

CONTRASTIVE_SCALE = 20.0


def _embed(model, enc: dict) -> torch.Tensor:
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)


def _unit_terms(lm, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per unit of the batch (see the module docstring): summed loss (with autograd), number of loss terms
    (predicted tokens or pairs), correct retrievals (0 for a causal LM)."""
    if lm.kind == "causal":
        ids = batch.inputs["input_ids"]
        logits = lm.model(input_ids=ids).logits[:, :-1].float()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none")
        b, predicted = ids.shape[0], ids.shape[1] - 1
        return ce.view(b, predicted).sum(1), torch.full((b,), float(predicted)), torch.zeros(b)
    a, p = _embed(lm.model, batch.inputs["anchor"]), _embed(lm.model, batch.inputs["positive"])
    scores = CONTRASTIVE_SCALE * a @ p.T
    target = torch.arange(len(scores))
    hits = (scores.argmax(1) == target).sum().float()
    return F.cross_entropy(scores, target, reduction="sum")[None], torch.tensor([float(len(scores))]), hits[None]


def batch_loss(lm, batch) -> tuple[torch.Tensor, float]:
    """(the batch's mean loss with autograd, number of correct retrievals — 0.0 for a causal LM)."""
    loss, terms, hits = _unit_terms(lm, batch)
    return loss.sum() / terms.sum(), float(hits.sum())


@dataclass(frozen=True)
class UnitLosses:
    """Per evaluation unit: summed loss, loss terms and correct retrievals (float64 arrays of one length)."""

    loss: np.ndarray
    terms: np.ndarray
    hits: np.ndarray

    @property
    def eval_loss(self) -> float:
        """The term-weighted mean loss Σ loss / Σ terms."""
        return float(self.loss.sum() / self.terms.sum())

    @property
    def accuracy(self) -> float:
        """Σ hits / Σ terms: the fraction of anchors that retrieve their own positive."""
        return float(self.hits.sum() / self.terms.sum())


@torch.no_grad()
def unit_losses(lm, batches) -> UnitLosses:
    """The held-out losses of ``lm`` on ``batches``, per evaluation unit (one forward pass per batch)."""
    parts = [[t.double().numpy() for t in _unit_terms(lm, batch)] for batch in batches]
    return UnitLosses(*(np.concatenate([p[k] for p in parts]) for k in range(3)))


def metrics(kind: str, units: UnitLosses) -> dict:
    """eval_loss and perplexity (causal) or retrieval_accuracy (contrastive)."""
    if kind == "causal":
        return {"eval_loss": units.eval_loss, "perplexity": math.exp(units.eval_loss)}
    return {"eval_loss": units.eval_loss, "retrieval_accuracy": units.accuracy}


def evaluate(lm, batches) -> dict:
    """Held-out metrics (``metrics``) of ``lm`` on ``batches``: the term-weighted mean loss over batches."""
    return metrics(lm.kind, unit_losses(lm, batches))
