"""Exporting a suite's problems to .npz / .safetensors files that load back unchanged."""
import numpy as np
import pytest
import torch

import problems
from problems import synthetic
from problems.export import export_problems, main


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_export_round_trips(tmp_path, suffix):
    probs = [synthetic.make("separable"), synthetic.make("heavy_tailed")]
    paths = export_problems(probs, tmp_path, suffix)
    for p, path in zip(probs, paths):
        q = problems.load(path)
        assert torch.equal(q.A, p.A) and torch.equal(q.W, p.W) and q.rank == p.rank and q.f_star == p.f_star
    if suffix == ".npz":
        assert np.load(paths[0])["A"].shape == probs[0].shape


def test_export_refuses_colliding_names_and_unknown_formats(tmp_path):
    p = synthetic.make("constant")
    with pytest.raises(ValueError, match="collide"):
        export_problems([p, p], tmp_path)
    with pytest.raises(ValueError, match="unsupported"):
        export_problems([p], tmp_path, ".csv")


def test_export_command_writes_a_suite(tmp_path, capsys):
    assert main(["synthetic-small", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.npz"))) == len(synthetic.FAMILIES)


def test_export_measures_inputs_only_for_real_lm_suites(tmp_path, capsys):
    assert main(["synthetic-small", str(tmp_path), "--inputs"]) == 2
    err = capsys.readouterr().err
    assert "real-LM suites" in err and err.count("\n") == 1
