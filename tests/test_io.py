import numpy as np
import pytest
import torch

from problems import ProblemFileError, load, save, synthetic


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    p = synthetic.separable(m=12, n=9, rank=2)
    path = save(p, tmp_path / f"p{suffix}")
    q = load(path)
    assert torch.equal(p.A, q.A) and torch.equal(p.W, q.W)
    assert (q.rank, q.name, q.f_star) == (p.rank, p.name, p.f_star)
    assert q.meta["family"] == "separable"
    assert load(path, rank=4).rank == 4
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_minimal_npz_and_safetensors(tmp_path):
    A, W = np.ones((4, 3)), np.ones((4, 3))
    np.savez(tmp_path / "min.npz", A=A, W=W)
    assert load(tmp_path / "min.npz", rank=1).name == "min"
    from safetensors.numpy import save_file

    save_file({"A": A, "W": W, "rank": np.array(2)}, str(tmp_path / "min.safetensors"))
    assert load(tmp_path / "min.safetensors").rank == 2


def test_load_errors(tmp_path):
    with pytest.raises(ProblemFileError, match="no such file"):
        load(tmp_path / "missing.npz")
    with pytest.raises(ProblemFileError, match="unsupported"):
        load(tmp_path / "x.csv")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ProblemFileError, match="cannot read"):
        load(tmp_path / "junk.npz")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(ProblemFileError, match="cannot read"):
        load(tmp_path / "junk.safetensors")
    np.savez(tmp_path / "nokeys.npz", X=np.ones(3))
    with pytest.raises(ProblemFileError, match="missing array"):
        load(tmp_path / "nokeys.npz")
    np.savez(tmp_path / "norank.npz", A=np.ones((2, 2)), W=np.ones((2, 2)))
    with pytest.raises(ProblemFileError, match="rank"):
        load(tmp_path / "norank.npz")
    np.savez(tmp_path / "nan.npz", A=np.full((2, 2), np.nan), W=np.ones((2, 2)), rank=1)
    with pytest.raises(ValueError, match="NaN"):
        load(tmp_path / "nan.npz")
