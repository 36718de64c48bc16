"""Tiny randomly initialised models of the real architectures (Llama causal LM, BERT encoder), built from configs
with a word-level tokenizer made in memory: the LM code paths run in seconds, without any download."""
from __future__ import annotations

import re

import torch

TEXT = [
    "The national executive appointed a senator as interim leader. The move is likely to provoke conflict. "
    "Senators rejected the bid. The party met again on Monday.",
    "The bank shelved a plan to buy shares. Investors sold the stock. The market fell sharply on Tuesday. "
    "Analysts said the plan was too costly.",
    "Fire crews battled a blaze near the city. Residents were told to leave their homes. The wind changed late "
    "in the day. Crews worked through the night.",
    "The minister announced new funding for schools. Teachers welcomed the money. Parents said it was not "
    "enough. The debate will continue next week.",
] * 3


def write_text(path) -> str:
    path.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    return str(path)


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for doc in TEXT for w in re.findall(r"\w+|[^\w\s]", doc)})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "</s>"] + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")


def llama(n_layers: int = 2, vocab: int = 128, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=n_layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def bert(vocab: int = 128, seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=128, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg)


def language_model(kind: str = "causal", source: str = "tiny-test", **kw):
    from problems.lm.models import LanguageModel

    model = llama(**kw) if kind == "causal" else bert(**kw)
    return LanguageModel(f"tiny-{kind}", kind, model, tokenizer(), source)


def save_model(path, kind: str = "causal", **kw) -> str:
    """A tiny Llama (``kind`` "causal") or BERT ("contrastive") and its tokenizer saved as a local Hugging Face
    folder (``problems.lm.load_model`` reads it)."""
    (llama(**kw) if kind == "causal" else bert(**kw)).save_pretrained(path)
    tokenizer().save_pretrained(path)
    return str(path)
