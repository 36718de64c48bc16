"""Real language-model suites: SmolLM2 and MiniLM weights with their empirical Fisher (see ``problems.lm``).

Building a suite loads the model offline and computes the Fisher once (cached; minutes for SmolLM2 on a CPU).
"""
from problems.suites import suite

_DESCRIPTIONS = {
    "smollm2-sample": "SmolLM2-135M q, o, gate, down of blocks 0, 14, 29 (12 matrices) with real Fisher",
    "smollm2-all": "all 210 Linear weights of SmolLM2-135M's 30 blocks (lm_head excluded) with real Fisher",
    "minilm-all": "all 36 Linear weights of all-MiniLM-L6-v2 with contrastive-loss Fisher",
}


def _register(name: str) -> None:
    from problems import lm

    def build():
        return lm.load_suite(name)[1]

    build.__qualname__ = f"lm_suite_{name}"
    suite(name, _DESCRIPTIONS[name], unavailable=lambda: lm.suite_unavailable(name))(build)


for _name in _DESCRIPTIONS:
    _register(_name)
