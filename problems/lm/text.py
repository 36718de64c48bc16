"""Real English text, offline, and how it is cut into batches for each kind of model.

Built-in corpora are data files of the installed ``gensim`` wheel (read in place, never copied):
``lee_background`` (300 news articles, the importance/Fisher text) and ``lee`` (50 more, held out for evaluation).
A path to a UTF-8 text file works too: one document per non-empty line.

- Causal LM: documents are tokenised, joined with the end-of-sequence token, cut into blocks of ``seq_len``
  tokens; the blocks are shuffled with ``seed`` and the first ⌈tokens/seq_len⌉ kept (so ``tokens`` is rounded
  up to whole blocks; None keeps them all: ``lee`` gives 39 blocks, 4992 tokens, for SmolLM2).
- Sentence encoder: (anchor, positive) pairs are consecutive sentences of one article; pairs are shuffled with
  ``seed`` and taken until their tokens reach ``tokens``. In a batch, the other positives are the negatives.
"""
from __future__ import annotations

import hashlib
import math
import importlib.metadata
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

GENSIM_DATA = "gensim/test/test_data/"
CORPORA = {"lee_background": "lee_background.cor", "lee": "lee.cor"}
GENSIM_PIP = "python -m pip install --no-deps gensim==4.4.0"


def corpus_path(text: str) -> Path:
    """The file behind a corpus name (or the path itself), with a clear error when it is missing."""
    if text in CORPORA:
        try:
            dist = importlib.metadata.distribution("gensim")
        except importlib.metadata.PackageNotFoundError:
            raise ImportError(f"text {text!r} is read from the package 'gensim': install it with "
                              f"`{GENSIM_PIP}`") from None
        path = Path(dist.locate_file(GENSIM_DATA + CORPORA[text]))
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing from the gensim install: reinstall with `{GENSIM_PIP}`")
        return path
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"text {text!r} is neither a corpus ({', '.join(CORPORA)}) nor a file")
    return path


def text_key(text: str) -> str:
    """Identifies a text in cache keys: the corpus name, or the file's name and content hash."""
    if text in CORPORA:
        return text
    path = corpus_path(text)
    return f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"


def read_documents(text: str) -> list[str]:
    """The non-empty lines of the corpus or file (gensim's lee files are UTF-8, one article a line)."""
    lines = corpus_path(text).read_text(encoding="utf-8", errors="replace").splitlines()
    docs = [ln.strip() for ln in lines if ln.strip()]
    if not docs:
        raise ValueError(f"text {text!r} has no non-empty lines")
    return docs


@dataclass
class Batch:
    """One step's input: token ids (causal) or two tokenised sentence lists (contrastive), and its token count."""

    inputs: dict
    n_tokens: int


def causal_batches(tokenizer, text: str, tokens: int | None, *, seq_len: int = 128, batch_size: int = 4,
                   seed: int = 0) -> list[Batch]:
    """Blocks of ``seq_len`` tokens (see module docstring), grouped ``batch_size`` per batch."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for doc in read_documents(text):
        stream.extend(tokenizer(doc, add_special_tokens=False).input_ids)
        stream.append(eos)
    blocks = [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    need = len(blocks) if tokens is None else -(-int(tokens) // seq_len)
    if need > len(blocks):
        raise ValueError(f"text {text!r} has {len(blocks) * seq_len} tokens in whole blocks of {seq_len}; "
                         f"asked for {tokens}")
    random.Random(seed).shuffle(blocks)
    ids = torch.tensor(blocks[:need], dtype=torch.long)
    return [Batch({"input_ids": ids[i:i + batch_size]}, ids[i:i + batch_size].numel())
            for i in range(0, need, batch_size)]


def _sentences(doc: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", doc) if len(s.split()) >= 3]


def pair_batches(tokenizer, text: str, tokens: int | None, *, batch_size: int = 16, max_length: int = 64,
                 seed: int = 0) -> list[Batch]:
    """(anchor, positive) sentence pairs (see module docstring), ``batch_size`` per batch; the last partial
    batch is kept only if it has at least two pairs (a contrastive loss needs a negative)."""
    pairs = [(a, b) for doc in read_documents(text) for a, b in zip(_sentences(doc), _sentences(doc)[1:])]
    random.Random(seed).shuffle(pairs)
    tokens = float("inf") if tokens is None else tokens
    batches, used = [], 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        if used >= tokens or len(chunk) < 2:
            break
        enc = [tokenizer([p[j] for p in chunk], padding=True, truncation=True, max_length=max_length,
                         return_tensors="pt") for j in (0, 1)]
        n = int(sum(e["attention_mask"].sum() for e in enc))
        batches.append(Batch({"anchor": dict(enc[0]), "positive": dict(enc[1])}, n))
        used += n
    if math.isfinite(tokens) and used < tokens:
        raise ValueError(f"text {text!r} has only {used} tokens of sentence pairs; asked for {tokens}")
    return batches


def batches_for(lm, text: str, tokens: int | None, seed: int = 0) -> list[Batch]:
    """The batches a model of ``lm.kind`` trains on (causal blocks or sentence pairs); ``tokens=None``: all."""
    if lm.kind == "causal":
        return causal_batches(lm.tokenizer, text, tokens, seed=seed)
    return pair_batches(lm.tokenizer, text, tokens, seed=seed)
