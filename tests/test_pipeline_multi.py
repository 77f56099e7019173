"""latent_debias_multi end to end on a tiny ToyFaces run with two protected attributes (Eyeglasses, and
Blond_Hair in ``data.protected_extra``): the pair set's labels follow each edit, the edit holds h_t's score and
flips or holds each protected score in latent space, every method reports its fairness metrics per protected
attribute, the flip modes rerun only what they change, and the config refuses bad extra attributes."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from rich.console import Console

from fairlatent.data.dataset import load_dataset
from fairlatent.errors import FairlatentError
from fairlatent.pipeline.config import validate_config
from fairlatent.pipeline.run import PROTECTED_METRICS, Pipeline
from fairlatent.report import build_report

T, G, E = "Wearing_Hat", "Eyeglasses", "Blond_Hair"
N_PAIRS = 60
RAW = {"seed": 0, "name": "multi", "device": "cpu",
       "data": {"n": 600, "size": 32, "protected_extra": [E]},
       "gan": {"steps": 600, "batch_size": 32, "width": 8},
       "labeler": {"epochs": 8},
       "classifier": {"epochs": 1, "width": 8, "stages": 2},
       "latent": {"n_fit": 200, "n_holdout": 100, "n_pairs": N_PAIRS, "batch_size": 128},
       "evaluation": {"n_boot": 20, "generative_metrics": False},
       "methods": ["baseline", "latent_debias_multi", "threshold_optimizer_tpr"]}


def _cfg(**changes):
    raw = json.loads(json.dumps(RAW))
    for dotted, value in changes.items():
        section, _, key = dotted.rpartition("__")
        (raw[section] if section else raw)[key] = value
    return validate_config(raw)


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("multi") / "run"
    pipe = Pipeline(_cfg(), run_dir, progress=False, console=Console(file=io.StringIO()))
    report = pipe.run()
    out = io.StringIO()
    build_report(run_dir, console=Console(file=out, width=200))
    return run_dir, pipe, report, out.getvalue()


def _pair_blocks(pairs, n: int) -> list[np.ndarray]:
    """Row indices of G(z) and of each edit's G(z'), in the order the pairs stage writes them."""
    assert len(pairs) % n == 0
    return [np.arange(k * n, (k + 1) * n) for k in range(len(pairs) // n)]


def _planes(pipe):
    hp = pipe.stages.results["hyperplanes"].outputs
    return {T: hp["h_t"], G: hp["h_g"], E: hp["h_extra"][E]}


def _score(plane, z):
    return z.astype(np.float64) @ np.array(plane["w"]) + plane["b"]


def test_extra_stages_ran_and_each_edit_of_each_mode_is_in_the_pair_set(multi_run):
    run_dir, pipe, report, _ = multi_run
    ran = set(pipe.stages.results)
    assert {f"labeler_{E}", "latents_extra"} <= ran
    stats = report["latent"]["edits"]["multi_protected"]
    assert list(stats["by_edit"]) == [G, E]  # mode "each": one edit per protected attribute
    assert stats["by_edit"][G]["flip"] == [G] and stats["by_edit"][G]["keep"] == [E]
    assert stats["by_edit"][E]["flip"] == [E] and stats["by_edit"][E]["keep"] == [G]
    pairs = load_dataset(run_dir / "pairs" / "multi_protected")
    assert len(pairs) == 3 * N_PAIRS and pairs.latents.shape == (3 * N_PAIRS, 128)
    assert set(report["latent"]["h_extra"]) == {E}
    # one pre-flight flip/keep check per edit of the mode
    names = {c["name"] for c in report["preflight"]["checks"]}
    assert {f"flip_rate_g[multi_protected: flip {G}]", f"keep_rate_t[multi_protected: flip {E}]"} <= names
    # and the extra plane is checked like h_t and h_g: its held-out accuracy and its angle with each
    checks = {c["name"]: c for c in report["preflight"]["checks"]}
    assert checks[f"h_{E}_heldout_acc"]["value"] == pytest.approx(report["latent"]["h_extra"][E]["heldout_acc"])
    assert checks[f"abs_cos[{E},h_t]"]["value"] == pytest.approx(abs(report["latent"]["h_extra"][E]["cos_t"]))
    assert f"abs_cos[{E},h_g]" in checks


def test_pair_labels_follow_the_edit(multi_run):
    """G(z) carries the labelers' labels; each G(z') z's target label and, per protected attribute, the label
    of G(z) flipped where its edit flips it and kept where it keeps it."""
    run_dir, pipe, _, _ = multi_run
    pairs = load_dataset(run_dir / "pairs" / "multi_protected")
    base, flip_g, flip_e = _pair_blocks(pairs, N_PAIRS)
    _, t_all, g_all, _ = pipe._latent_arrays()
    e_all = pipe._extra_labels()[:, 0]
    start = len(t_all) - N_PAIRS
    t, g, e = pairs.labels(T), pairs.labels(G), pairs.labels(E)
    np.testing.assert_array_equal(t[base], t_all[start:])
    np.testing.assert_array_equal(g[base], g_all[start:])
    np.testing.assert_array_equal(e[base], e_all[start:])
    for block in (flip_g, flip_e):
        np.testing.assert_array_equal(t[block], t[base])
    np.testing.assert_array_equal(g[flip_g], 1 - g[base])
    np.testing.assert_array_equal(e[flip_g], e[base])
    np.testing.assert_array_equal(g[flip_e], g[base])
    np.testing.assert_array_equal(e[flip_e], 1 - e[base])
    # each pair's images share a group id, so a group split keeps them together
    gid = pairs.table["group_id"].to_numpy()
    np.testing.assert_array_equal(gid[base], gid[flip_g])
    np.testing.assert_array_equal(gid[base], gid[flip_e])


def test_edit_keeps_the_target_score_and_flips_or_keeps_each_protected_score(multi_run):
    """In latent space, on the stored latents (float32): w_t·z' + b_t = w_t·z + b_t; a flipped protected score
    is negated, a kept one unchanged; and z' − z lies in the span of the three normals (the minimum-norm edit)."""
    run_dir, pipe, report, _ = multi_run
    pairs = load_dataset(run_dir / "pairs" / "multi_protected")
    base, flip_g, flip_e = _pair_blocks(pairs, N_PAIRS)
    z = np.asarray(pairs.latents, dtype=np.float64)
    planes = _planes(pipe)
    tol = 1e-4  # float32 latents of norm ~11
    for block, flipped in ((flip_g, G), (flip_e, E)):
        zp = z[block]
        np.testing.assert_allclose(_score(planes[T], zp), _score(planes[T], z[base]), atol=tol)
        for a in (G, E):
            want = -_score(planes[a], z[base]) if a == flipped else _score(planes[a], z[base])
            np.testing.assert_allclose(_score(planes[a], zp), want, atol=tol)
        # the flipped score really changed sign where it was not ~0
        s = _score(planes[flipped], z[base])
        assert np.all(np.sign(_score(planes[flipped], zp))[np.abs(s) > 1e-2] == -np.sign(s)[np.abs(s) > 1e-2])
        A = np.stack([np.array(planes[a]["w"]) for a in (T, G, E)])
        delta = zp - z[base]
        coef, *_ = np.linalg.lstsq(A.T, delta.T, rcond=None)
        assert np.abs(A.T @ coef - delta.T).max() < tol
    # measured inside the run in float64
    for e in report["latent"]["edits"]["multi_protected"]["by_edit"].values():
        assert max(e["latent_score_change"].values()) < 1e-8


def test_every_method_reports_fairness_per_protected_attribute(multi_run):
    from fairlatent.metrics.bootstrap import bootstrap_metrics, paired_difference

    run_dir, pipe, _, terminal = multi_run
    report = json.loads((run_dir / "report.json").read_text())
    assert report["protected"] == G and report["protected_extra"] == [E]
    saved = np.load(pipe.stages.results["evaluate"].dir / "scores.npz")
    ev = pipe.cfg.evaluation
    for m, res in report["methods"].items():
        per = res["by_protected"]
        assert set(per) == {G, E}, m
        for split in ("test", "test_balanced"):
            # the main attribute's figures are the headline table's
            for k, v in per[G][split].items():
                assert v == res[split][k], (m, split, k)
            want = set(PROTECTED_METRICS) - ({"KL"} if m == "threshold_optimizer_tpr" else set())
            assert set(per[E][split]) == want and set(per[G][split]) == want, (m, split)
            if m == "threshold_optimizer_tpr":
                continue
            # the extra attribute's: the bootstrap of the saved scores with its groups
            again = bootstrap_metrics(saved[f"_y/{split}"], saved[f"{m}/{split}"],
                                      sensitive_features=saved[f"_protected/{E}/{split}"], threshold=res["threshold"],
                                      n_boot=ev.n_boot, ci=ev.ci, seed=report["config"]["seed"],
                                      metrics=PROTECTED_METRICS)
            for k in PROTECTED_METRICS:
                assert per[E][split][k]["median"] == pytest.approx(again[k]["median"], abs=1e-9), (m, split, k)
    # paired differences against the baseline per protected attribute: the main one's are the headline's, the
    # extra one's those of the two methods' bootstrap samples (same resamples) of the saved scores and groups
    assert "by_protected_vs_baseline" not in report["methods"]["baseline"]

    def samples_of(m: str, split: str):
        res = report["methods"][m]
        return bootstrap_metrics(saved[f"_y/{split}"], saved[f"{m}/{split}"],
                                 sensitive_features=saved[f"_protected/{E}/{split}"], threshold=res["threshold"],
                                 n_boot=ev.n_boot, ci=ev.ci, seed=report["config"]["seed"],
                                 metrics=PROTECTED_METRICS, return_samples=True)[1]

    for m, res in report["methods"].items():
        if m == "baseline":
            continue
        vs = res["by_protected_vs_baseline"]
        assert list(vs) == [G, E], m
        for split in ("test", "test_balanced"):
            assert vs[G][split] == {k: v for k, v in res["paired_vs_baseline"][split].items()
                                    if k in PROTECTED_METRICS}, (m, split)
            if m == "threshold_optimizer_tpr":
                assert "KL" not in vs[E][split] and "DEO" in vs[E][split]
                continue
            again = paired_difference(samples_of(m, split), samples_of("baseline", split), ci=ev.ci)
            for k in ("DEO", "BA", "EOdds"):
                for q in ("median", "lo", "hi", "p_better"):
                    assert vs[E][split][k][q] == pytest.approx(again[k][q], abs=1e-9), (m, split, k, q)
    # Blond_Hair is not Eyeglasses: the groups differ, so some figure differs
    base = report["methods"]["baseline"]["by_protected"]
    assert any(base[G]["test"][k]["median"] != base[E]["test"][k]["median"] for k in ("DEO", "DP", "EOdds"))
    flat = " ".join(terminal.split())
    assert f"DEO ↓ ({E})" in flat and f"BA ↓ ({G})" in flat and "fairness per protected attribute" in flat
    html = (run_dir / "report.html").read_text()
    assert f"DEO ↓ ({E})" in html and f"EOdds ↓ ({G})" in html
    # the paired ΔDEO per attribute, in the terminal and the page, as fmt_paired prints it
    from fairlatent.report.build import fmt_paired

    shown = fmt_paired(report["methods"]["latent_debias_multi"]["by_protected_vs_baseline"][E]["test"]["DEO"])
    assert f"ΔDEO vs baseline ({E})" in flat and shown in flat
    assert f"ΔDEO ({E})" in html and shown in html


@pytest.mark.parametrize("mode", ["all", "one"])
def test_flip_mode_changes_only_the_pairs_and_what_trains_on_them(multi_run, tmp_path, mode):
    run_dir, _, _, _ = multi_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    pipe = Pipeline(_cfg(latent__multi_flip=mode), copy, progress=False, console=Console(file=io.StringIO()))
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert ran == {"pairs", "preflight", "train_latent_debias_multi", "evaluate"}
    pairs = load_dataset(copy / "pairs" / "multi_protected")
    base, edited = _pair_blocks(pairs, N_PAIRS)  # one edit in either mode
    z = np.asarray(pairs.latents, dtype=np.float64)
    planes = _planes(pipe)
    g, e = pairs.labels(G), pairs.labels(E)
    np.testing.assert_array_equal(g[edited], 1 - g[base])
    flipped = {"all": [G, E], "one": [G]}[mode]
    np.testing.assert_array_equal(e[edited], 1 - e[base] if E in flipped else e[base])
    for a in (G, E):
        want = -_score(planes[a], z[base]) if a in flipped else _score(planes[a], z[base])
        np.testing.assert_allclose(_score(planes[a], z[edited]), want, atol=1e-4)
    np.testing.assert_allclose(_score(planes[T], z[edited]), _score(planes[T], z[base]), atol=1e-4)
    assert list(report["latent"]["edits"]["multi_protected"]["by_edit"]) == [{"all": "all", "one": G}[mode]]
    assert report["config"]["latent"]["multi_flip"] == mode


def test_without_extra_attributes_nothing_upstream_reruns_and_no_per_protected_figures(multi_run, tmp_path):
    """protected_extra is not in the data stage's key (ToyFaces renders every attribute anyway), and without it
    the evaluation and report are as before it existed."""
    run_dir, _, _, _ = multi_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    raw = json.loads(json.dumps(RAW))
    raw["data"].pop("protected_extra")
    raw["methods"] = ["baseline", "threshold_optimizer_tpr"]
    pipe = Pipeline(validate_config(raw), copy, progress=False, console=Console(file=io.StringIO()))
    report = pipe.run()
    ran = {name for name, r in pipe.stages.results.items() if not r.skipped}
    assert ran == {"evaluate"}
    assert "protected_extra" not in report and all("by_protected" not in r for r in report["methods"].values())
    assert "protected_extra" not in report["config"]["data"] and "multi_flip" not in report["config"]["latent"]


# --------------------------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("extra, message", [
    (["Hair"], "config: data.protected_extra: ToyFaces has no attribute 'Hair'; attributes are: Wearing_Hat, "),
    (["Smiling", "Bangs", "Smiling"], "config: data.protected_extra: lists 'Smiling' more than once"),
    (["Wearing_Hat"], "config: data.protected_extra: 'Wearing_Hat' is data.target; list only further protected "
                      "attributes"),
    (["Smiling", "Eyeglasses"], "config: data.protected_extra: 'Eyeglasses' is data.protected; list only further "
                                "protected attributes"),
    (["a/b"], "config: data.protected_extra: 'a/b' is not a plain attribute name"),
])
def test_bad_extra_protected_attributes_are_named(extra, message):
    with pytest.raises(FairlatentError) as info:
        validate_config({"data": {"protected_extra": extra}})
    assert str(info.value).startswith(message), str(info.value)


def test_multi_method_needs_extra_attributes_and_a_known_mode():
    with pytest.raises(FairlatentError) as info:
        validate_config({"methods": ["baseline", "latent_debias_multi"]})
    assert "methods lists 'latent_debias_multi', which edits several protected attributes: name the ones besides " \
           "data.protected in data.protected_extra" in str(info.value)
    with pytest.raises(FairlatentError) as info:
        validate_config({"latent": {"multi_flip": "both"}})
    assert "config: latent.multi_flip: Input should be 'each', 'all' or 'one' (got 'both')" in str(info.value)
    cfg = validate_config({"data": {"protected_extra": ["Smiling"]}, "methods": ["latent_debias_multi"],
                           "latent": {"multi_flip": "one"}})
    assert cfg.needs_multi() and cfg.protected_all() == [G, "Smiling"] and cfg.edits_needed() == ["multi_protected"]
    assert not validate_config({"data": {"protected_extra": ["Smiling"]}}).needs_multi()


def test_extra_attribute_missing_from_a_path_data_set_is_named(toyfaces_small, tmp_path):
    cfg = validate_config({"data": {"source": "path", "path": str(toyfaces_small), "protected_extra": ["Male"]},
                           "methods": ["baseline"]})
    pipe = Pipeline(cfg, tmp_path / "run", progress=False, console=Console(file=io.StringIO()))
    with pytest.raises(FairlatentError) as info:
        pipe.stage_data()
    assert str(info.value).startswith(f"data.protected_extra: {toyfaces_small} has no attribute 'Male'; attributes "
                                      "are: Wearing_Hat, Eyeglasses")


def test_the_benchmark_summary_keeps_every_protected_attribute_and_the_multi_edits(multi_run):
    """What a benchmark's run record keeps of a run with protected_extra: each method's test figures per
    protected attribute, the paired differences per attribute, and each multi edit's rates on the images."""
    from fairlatent.benchmark.tasks import summarize_report

    run_dir, _, _, _ = multi_run
    report = json.loads((run_dir / "report.json").read_text())
    summary = summarize_report(report)
    assert summary["protected_extra"] == [E]
    for m, res in report["methods"].items():
        kept = summary["methods"][m]["by_protected"]
        assert set(kept) == {G, E}
        for a in (G, E):
            for k, v in kept[a].items():
                assert v == {q: res["by_protected"][a]["test"][k][q] for q in ("median", "lo", "hi")}, (m, a, k)
            assert "DEO" in kept[a] and "AP" not in kept[a]
        if m != "baseline":
            assert summary["methods"][m]["by_protected_vs_baseline"][E]["DEO"] == \
                res["by_protected_vs_baseline"][E]["test"]["DEO"]
    edits = report["latent"]["edits"]["multi_protected"]["by_edit"]
    assert set(summary["latent"]["multi_edits"]) == set(edits)
    for name, e in summary["latent"]["multi_edits"].items():
        assert e["flip_rate"] == edits[name]["flip_rate"] and e["did_all_rate"] == edits[name]["did_all_rate"]
