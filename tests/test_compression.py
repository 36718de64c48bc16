"""The compression grid on the runner (bench.compression), on a tiny Llama: layer runs and model evaluations
in one store, budgets, resume after SIGKILL without solving a finished layer again, batched == unbatched."""
import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import lm_tiny  # noqa: E402
from bench import results  # noqa: E402
from bench.compression import LAYER_TIME_LIMIT, LAYER_TOL, compress, requires_inputs  # noqa: E402
from bench.evaluation import HeldOut  # noqa: E402
from problems import lm as lmpkg  # noqa: E402
from problems.lm.loss import evaluate  # noqa: E402
from problems.lm.text import batches_for  # noqa: E402
from reports import lm as report  # noqa: E402
from tests.processes import kill_after, wlrbench  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    folder = lm_tiny.save_model(root / "tiny-llama")
    text = lm_tiny.write_text(root / "docs.txt")
    lm = lmpkg.load_model(folder)
    names = lm.select("0-1", "q,up,down")
    fisher = lmpkg.fisher(lm, names, text=text, tokens=64, progress=False)
    return SimpleNamespace(root=root, folder=folder, text=text, lm=lm, names=names,
                           problems=lmpkg.lm_problems(lm, names, fisher, text=text))


def _grid(tiny, out, specs, ratios, tokens=256, problems=None, **kw):
    kw = {"log": lambda *_: None, **kw}
    return compress(problems or tiny.problems, specs, ratios, held_out=HeldOut(tiny.folder, None, tiny.text, tokens),
                    model_name=tiny.lm.name, out=out, progress=False, **kw)


def _mtimes(folder, pattern):
    return {f.name: f.stat().st_mtime_ns for f in folder.glob(pattern)}


def test_layers_and_models_are_records_of_one_store(tiny, tmp_path):
    frame = _grid(tiny, tmp_path, ["svd", "fwsvd_row"], [0.25, 10.0])  # ρ = 10: full rank, exact factors
    runs = frame[frame["final"] & (frame["record"] == "run")]
    assert len(runs) == 6 * 2 * 2 and runs["run_id"].nunique() == 24
    meta = {p.name: p.meta for p in tiny.problems}
    assert all(r.model == "tiny-llama" and (r.layer, r.module) == (meta[r.problem]["layer"], meta[r.problem]["module"])
               for r in runs.itertuples())
    assert (runs["time_limit"] == LAYER_TIME_LIMIT).all() and (runs["tol"] == LAYER_TOL).all()
    assert (runs["n_params"] == runs["rank"] * (runs["m"] + runs["n"])).all()
    assert results.factor_ids(tmp_path) == set(runs["run_id"])

    models = report.evaluations(frame).set_index(["solver", "param_ratio"])
    assert len(models) == 5 and models["stop_reason"].eq("evaluated").all()
    dense = evaluate(tiny.lm, batches_for(tiny.lm, tiny.text, 256))["eval_loss"]
    assert models.loc[("dense", 1.0), "eval_loss"] == pytest.approx(dense, rel=1e-6)
    for solver in ("svd", "fwsvd_row"):
        assert models.loc[(solver, 10.0), "eval_loss"] == pytest.approx(dense, abs=1e-5)  # exact factors
    assert (models["eval_loss_low"] <= models["eval_loss"]).all() and (models["eval_loss"] <= models["eval_loss_high"]).all()
    saved = sum(p.shape[0] * p.shape[1] - p.with_rank(max(1, int(0.25 * p.shape[0] * p.shape[1] / sum(p.shape))))
                .rank * sum(p.shape) for p in tiny.problems)
    assert models.loc[("dense", 1.0), "n_params"] - models.loc[("svd", 0.25), "n_params"] == saved
    layers = json.loads(models.loc[("svd", 0.25), "info"])["layers"]
    assert set(layers) == set(tiny.names) and set(layers.values()) <= set(runs["run_id"])

    table = report.model_table(frame)
    assert list(table["solver"])[0] == "dense" and len(table) == 5 and (table["n_layers"][1:] == 6).all()

    # Resume: nothing is redone. Factors deleted to save disk are solved again only when a new model needs them.
    before, factors = _mtimes(tmp_path / "runs", "*.parquet"), _mtimes(tmp_path / "factors", "*")
    _grid(tiny, tmp_path, ["svd", "fwsvd_row"], [0.25, 10.0])
    assert _mtimes(tmp_path / "runs", "*.parquet") == before and _mtimes(tmp_path / "factors", "*") == factors
    gone = layers[tiny.names[0]]
    results.factors_path(tmp_path, gone).unlink()
    _grid(tiny, tmp_path, ["svd"], [0.25])  # its model is evaluated: the layer is not needed
    assert gone not in results.factor_ids(tmp_path)
    frame = _grid(tiny, tmp_path, ["svd"], [0.25], tokens=128)  # a new held-out setting needs it again
    after = _mtimes(tmp_path / "runs", "*.parquet")
    assert {k for k in after if after[k] != before.get(k)} == {f"{gone}.parquet"} | {
        k for k in after if k.startswith("eval-") and k not in before}
    assert len(report.evaluations(frame)) == 2  # dense and svd at ρ = 0.25 on 128 tokens


def test_a_spec_overrides_the_layer_budget(tiny, tmp_path):
    frame = _grid(tiny, tmp_path, ["als[max_iter=2,time_limit=5]"], [0.5], tokens=128, tol=0.0)
    runs = frame[frame["final"] & (frame["record"] == "run")]
    assert set(runs["solver"]) == {"als[max_iter=2,time_limit=5.0]"}
    assert (runs["max_iter"] == 2).all() and (runs["time_limit"] == 5).all() and (runs["tol"] == 0).all()
    assert (runs["n_iter"] == 2).all() and set(runs["stop_reason"]) == {"max_iter"}
    with pytest.raises(ValueError, match="time_limit"):
        _grid(tiny, tmp_path, ["als[time_limit=-1]"], [0.5])


def test_batched_and_unbatched_layers_have_the_same_factors(tiny, tmp_path):
    specs = ["als[max_iter=3]", "adam[tol=1e-3,max_iter=200]"]  # adam stops on tol, at a different step per layer
    layers = [p for p in tiny.problems if p.meta["module"] != "down"]
    kw = dict(dtype="float64", tokens=128, time_limit=float("inf"), problems=layers)
    alone = _grid(tiny, tmp_path / "alone", specs, [0.5], **kw)
    together = _grid(tiny, tmp_path / "together", specs, [0.5], batched=True, **kw)

    def by_layer(frame, store):
        runs = frame[frame["final"] & (frame["record"] == "run")]
        return {(r.solver, r.problem): (r, results.read_factors(results.factors_path(store, r.run_id)))
                for r in runs.itertuples()}

    one, many = by_layer(alone, tmp_path / "alone"), by_layer(together, tmp_path / "together")
    assert one.keys() == many.keys() and len(one) == 8
    batches = {(json.loads(r.info)["batch"]["run_id"], json.loads(r.info)["batch"]["size"]) for r, _ in many.values()}
    assert len(batches) == 2 * 2 and {size for _, size in batches} == {2}  # per solver: q and up of 2 blocks
    for key, (run, (U, V)) in one.items():
        other, (U2, V2) = many[key]
        assert U.dtype == torch.float64 and other.n_iter == run.n_iter and other.stop_reason == run.stop_reason
        torch.testing.assert_close(U2, U, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(V2, V, rtol=1e-9, atol=1e-11)
        assert other.objective == pytest.approx(run.objective, rel=1e-10)
    assert len({r.n_iter for (s, _), (r, _) in one.items() if s.startswith("adam")}) > 1  # stopped apart


def test_a_sentence_encoder_is_evaluated_with_its_retrieval_accuracy(tiny, tmp_path):
    folder = lm_tiny.save_model(tmp_path / "tiny-bert", "contrastive")
    bert = lmpkg.load_model(folder)
    names = bert.select("0", "q,up")
    fisher = lmpkg.fisher(bert, names, text=tiny.text, tokens=100, progress=False)
    frame = compress(lmpkg.lm_problems(bert, names, fisher, text=tiny.text), ["svd"], [0.5],
                     held_out=HeldOut(folder, None, tiny.text, None), model_name=bert.name, out=tmp_path / "s",
                     progress=False)
    models = report.evaluations(frame).set_index("solver")
    units = json.loads(models.loc["dense", "info"])["units"]
    assert len(units["terms"]) == 3 and sum(units["terms"]) == 36  # 36 sentence pairs in batches of 16
    dense = evaluate(bert, batches_for(bert, tiny.text, None))
    assert models.loc["dense", "eval_accuracy"] == pytest.approx(dense["retrieval_accuracy"])
    assert (models["eval_accuracy_low"] <= models["eval_accuracy"]).all()
    assert (models["eval_accuracy"] <= models["eval_accuracy_high"]).all() and models["eval_accuracy_high"].le(1).all()
    assert "retrieval_accuracy" in report.model_table(frame) and "perplexity" not in report.model_table(frame)


@pytest.mark.slow
def test_resume_after_sigkill_solves_no_finished_layer_again(tiny, tmp_path):
    out = tmp_path / "store"
    cmd, kw = wlrbench("compress", "--model", tiny.folder, "--text", tiny.text, "--eval-text", tiny.text,
                       "--tokens", "64", "--eval-tokens", "128", "--layers", "0-1", "--cache", str(tmp_path / "cache"),
                       "--solver", "plugin_sleep[seconds=0.4],svd", "--param-ratio", "0.25,0.5", "--out", str(out),
                       "--no-progress", env={"WLRBENCH_PLUGINS": "plugin_solvers"})
    folder = out / "runs"
    kill_after(cmd, kw, folder, 4, timeout=300)
    layers = 2 * 7 * 2 * 2  # blocks × modules × solvers × ratios
    before, factors = _mtimes(folder, "*.parquet"), _mtimes(out / "factors", "*.safetensors")
    assert 4 <= len(before) < layers, "killed too late to test a resume"
    assert set(factors) == {k.replace(".parquet", ".safetensors") for k in before}  # factors written first

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, done.stderr
    after = _mtimes(folder, "*.parquet")
    assert {k: after[k] for k in before} == before  # no finished layer solved again
    assert {k: v for k, v in _mtimes(out / "factors", "*.safetensors").items() if k in factors} == factors
    store = results.load(out)
    assert (store.loc[store["final"], "record"] == "run").sum() == layers
    models = report.evaluations(store)
    assert sorted(models["solver"]) == ["dense", "plugin_sleep[seconds=0.4]", "plugin_sleep[seconds=0.4]", "svd", "svd"]
    same = models.groupby("param_ratio")["eval_loss"].agg(np.ptp)  # plugin_sleep is the truncated SVD
    assert (same.drop(1.0) < 1e-9).all() and "Paired bootstrap" in done.stdout


@pytest.fixture(scope="module")
def with_inputs(tiny):
    """The tiny layers carrying their input statistics, from the Fisher's text, tokens and seed."""
    stats = lmpkg.input_statistics(tiny.lm, tiny.names, text=tiny.text, tokens=64, progress=False)
    fisher = lmpkg.fisher(tiny.lm, tiny.names, text=tiny.text, tokens=64, progress=False)
    return lmpkg.lm_problems(tiny.lm, tiny.names, fisher, text=tiny.text, inputs=stats)


def test_activation_aware_solvers_join_the_grid_and_every_layer_records_its_activation_error(tiny, with_inputs,
                                                                                              tmp_path, capsys):
    assert requires_inputs("svd,asvd") and requires_inputs(["svd_llm[]"]) and not requires_inputs("svd,adam")
    frame = _grid(tiny, tmp_path / "plain", ["svd", "asvd"], [0.5], tokens=128)
    assert set(report.evaluations(frame)["solver"]) == {"dense", "svd"}  # asvd refuses layers without inputs
    assert capsys.readouterr().err.count("skipping asvd on tiny-llama.") == 6
    assert np.isnan(frame["activation_error"]).all()

    frame = _grid(tiny, tmp_path / "inputs", ["svd", "fwsvd_row", "asvd", "svd_llm"], [0.5], tokens=128,
                  problems=with_inputs)
    runs = frame[frame["final"] & (frame["record"] == "run")]
    assert len(runs) == 6 * 4 and np.isfinite(runs["activation_error"]).all()
    assert runs["activation_error"].between(0, 1).all()
    act = runs.pivot(index="problem", columns="solver", values="activation_error")
    for p in with_inputs:  # svd_llm minimises the activation objective at every rank: the lowest on every layer
        U, V = results.read_factors(results.factors_path(tmp_path / "inputs",
                                                         runs.loc[(runs["problem"] == p.name) &
                                                                  (runs["solver"] == "svd"), "run_id"].item()))
        assert act.loc[p.name, "svd"] == pytest.approx(p.with_rank(U.shape[1]).activation_error(U, V), rel=1e-9)
    assert (act["svd_llm"] <= act.drop(columns="svd_llm").min(axis=1) + 1e-9).all()
    table = report.model_table(frame).set_index("solver")
    assert set(table.index) == {"dense", "svd", "fwsvd_row", "asvd", "svd_llm"}
    assert table.loc["svd_llm", "mean_activation_error"] == pytest.approx(act["svd_llm"].mean())
    agreement = report.objective_agreement(report.model_table(frame)).iloc[0]
    assert agreement["models"] == 4 and agreement["lowest activation"] == "svd_llm"
    assert -1 <= agreement["activation ~ loss ρ"] <= 1


def test_greedy_allocation_meets_the_budget_records_its_ranks_and_shares_runs_with_uniform(tiny, tmp_path):
    from bench.allocation import allocate, layer_params

    budgets = [0.3, 0.5]
    frame = _grid(tiny, tmp_path, ["svd"], budgets, tokens=128, strategies=["uniform", "greedy"])
    runs = frame[frame["final"] & (frame["record"] == "run")].set_index("run_id")
    models = report.evaluations(frame)
    dense = models.loc[models["solver"] == "dense"].iloc[0]
    dense_layers = sum(p.shape[0] * p.shape[1] for p in tiny.problems)
    largest_step = max(sum(p.shape) for p in tiny.problems)
    assert sorted(zip(models["param_ratio"], models["allocation"])) == \
        [(0.3, "greedy"), (0.3, "uniform"), (0.5, "greedy"), (0.5, "uniform"), (1.0, "")]
    for ev in models[models["solver"] != "dense"].itertuples():
        info = json.loads(ev.info)
        alloc = info["allocation"]
        expected = allocate(tiny.problems, ev.param_ratio, ev.allocation)
        assert alloc["strategy"] == ev.allocation and alloc["budget"] == ev.param_ratio
        assert [alloc["ranks"][n] for n in tiny.names] == list(expected.ranks)
        used = runs.loc[[info["layers"][n] for n in tiny.names]]
        assert list(used["rank"]) == list(expected.ranks)  # the model's layers are the runs at those ranks
        spent = sum(layer_params(p.shape, r) for p, r in zip(tiny.problems, expected.ranks))
        assert alloc["params"] == spent == (used["n_params"]).sum()
        assert dense.n_params - ev.n_params == dense_layers - spent  # the model's size is what the layers spend
        assert spent <= alloc["budget_params"] < spent + largest_step  # the budget, within one rank step
        assert alloc["budget_params"] <= ev.param_ratio * dense_layers
    assert len(runs) == len({(p, r) for p, r in zip(runs["problem"], runs["rank"])})  # one run per layer and rank
    greedy = allocate(tiny.problems, 0.5, "greedy").ranks
    uniform = allocate(tiny.problems, 0.5).ranks
    assert greedy != uniform and any(g == u for g, u in zip(greedy, uniform))  # shared layers are solved once

    curves = _mtimes(tmp_path / "curves", "*.npy")
    assert len(curves) == len(tiny.problems)
    before = _mtimes(tmp_path / "runs", "*.parquet")
    _grid(tiny, tmp_path, ["svd"], [0.5], tokens=128)  # --param-ratio 0.5: uniform at budget 0.5, stored already
    assert _mtimes(tmp_path / "runs", "*.parquet") == before and _mtimes(tmp_path / "curves", "*.npy") == curves

    table = report.strategy_table(frame)
    assert list(zip(table["param_ratio"], table["allocation"])) == \
        [(0.5, "uniform"), (0.5, "greedy"), (0.3, "uniform"), (0.3, "greedy")]
    greedy_rows = table[table["allocation"] == "greedy"]
    assert np.isfinite(greedy_rows["Δ loss vs uniform"]).all() and greedy_rows["p-value"].between(0, 1).all()
    assert greedy_rows["predicted_error"].tolist() == pytest.approx(
        [allocate(tiny.problems, rho, "greedy").predicted_error for rho in (0.5, 0.3)], rel=1e-12)
    ranks = report.allocation_ranks(frame)
    assert len(ranks) == 2 * 2 * 6 and set(ranks["module"]) == {"q", "up", "down"}
    fig = report.allocation_figure(ranks)
    assert len(fig.axes) == 4 and "greedy" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="unknown allocation strategy 'best'"):
        _grid(tiny, tmp_path, ["svd"], [0.5], strategies=["best"])
