"""fairlatent.benchmark.compare and `fairlatent benchmark compare`: two benchmark folders read run by run, on
planted run records whose figures are known."""

import json

import numpy as np
import pytest

from fairlatent.benchmark.compare import compare_latents, comparison_markdown, read_results
from fairlatent.errors import FairlatentError

GROUPS = ["Smiling", "Wavy_Hair"]


def _run(h_t: float, cos: float, d_deo: tuple[float, float, float], base: float, fid: float | None = 30.0) -> dict:
    med, lo, hi = d_deo
    return {"latent": {"h_t_heldout_acc": h_t, "h_g_heldout_acc": 0.9, "cos_theta": cos, "flip_rate_g": 0.8,
                       "keep_rate_t": 0.7},
            "generative": [] if fid is None else [{"name": "G(z) · all", "FID": fid}],
            "methods": {"baseline": {"DEO": {"median": base, "lo": base - 2, "hi": base + 2}},
                        "latent_debias": {"DEO": {"median": base + med, "lo": 0.0, "hi": 1.0},
                                          "vs_baseline": {"DEO": {"median": med, "lo": lo, "hi": hi},
                                                          "AP": {"median": -0.1, "lo": -0.3, "hi": 0.1}}}}}


def planted() -> tuple[dict, dict]:
    """A: h_t 0.80 + 0.01·seed, cos −0.5; B: h_t 0.85 + 0.02·seed, cos 0.2, ΔDEO 2 points lower per run. B has
    an extra seed of Wavy_Hair; A one of Smiling."""
    a = {"runs": {}}
    b = {"runs": {}}
    for g in GROUPS:
        for s in (0, 1):
            a["runs"][f"{g}/seed{s}"] = _run(0.80 + 0.01 * s, -0.5, (-1.0 - s, -3.0, 1.0), 10.0 + s)
            b["runs"][f"{g}/seed{s}"] = _run(0.85 + 0.02 * s, 0.2, (-3.0 - s, -5.0, -1.0), 10.0 + s, fid=None)
    a["runs"]["Smiling/seed2"] = _run(0.8, 0.1, (0.0, -1.0, 1.0), 9.0)
    b["runs"]["Wavy_Hair/seed2"] = _run(0.8, 0.1, (0.0, -1.0, 1.0), 9.0)
    return a, b


def test_groups_hold_the_means_and_the_per_run_differences():
    a, b = planted()
    cmp = compare_latents(a, b)
    assert list(cmp["groups"]) == GROUPS
    assert cmp["only_a"] == ["Smiling/seed2"] and cmp["only_b"] == ["Wavy_Hair/seed2"]
    h_t = cmp["groups"]["Smiling"]["h_t"]
    assert h_t["a"]["mean"] == pytest.approx(0.805) and h_t["b"]["mean"] == pytest.approx(0.86)
    d = [0.05, 0.06]  # B − A per seed
    assert h_t["b_minus_a"]["mean"] == pytest.approx(np.mean(d))
    assert h_t["b_minus_a"]["sd"] == pytest.approx(np.std(d, ddof=1))
    cos = cmp["groups"]["Wavy_Hair"]["abs_cos"]
    assert cos["a"]["mean"] == pytest.approx(0.5) and cos["b_minus_a"]["mean"] == pytest.approx(-0.3)
    deo = cmp["groups"]["Wavy_Hair"]["d_deo"]
    assert deo["b_minus_a"]["mean"] == pytest.approx(-2.0) and deo["b_minus_a"]["n"] == 2
    # a figure one side lacks (B measured no FID) has no difference
    fid = cmp["groups"]["Smiling"]["fid"]
    assert fid["a"]["n"] == 2 and fid["b"]["n"] == 0 and fid["b_minus_a"]["n"] == 0


def test_markdown_names_the_better_side_and_bolds_significant_runs():
    a, b = planted()
    md = comparison_markdown(compare_latents(a, b), ("gan", "infogan"))
    row = next(line for line in md.splitlines() if line.startswith("| Smiling | h_t acc |"))
    assert row.endswith("| infogan |") and "+0.055 ± 0.007" in row
    row = next(line for line in md.splitlines() if line.startswith("| Smiling | \\|cos θ\\| |"))
    assert row.endswith("| infogan |")  # smaller is better
    # every row of the summary table has its six cells: the pipes of "|cos θ|" are escaped, not cell borders
    table = md.split("\n\n")[2].splitlines()
    assert len(table) > 2 and all(ln.replace("\\|", "").count("|") == 7 for ln in table)
    run = next(line for line in md.splitlines() if line.startswith("| Smiling/seed1 |"))
    assert "| -2.0 [-3.0, +1.0] |" in run and "**-4.0 [-5.0, -1.0]**" in run
    assert "Only in gan (1 runs, left out): `Smiling/seed2`." in md


def test_nothing_shared_bad_folder_and_bad_names_are_refused(tmp_path, cli):
    a, b = planted()
    b["runs"] = {"Other/seed0": a["runs"]["Smiling/seed0"]}
    with pytest.raises(FairlatentError, match="share no run"):
        compare_latents(a, b)
    with pytest.raises(FairlatentError, match="no results.json"):
        read_results(tmp_path / "absent")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.json").write_text(json.dumps({"pairs": {}}))
    with pytest.raises(FairlatentError, match="no 'runs' mapping"):
        read_results(tmp_path / "x")
    a, b = planted()
    for name, res in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(res))
    cli.user_error(["benchmark", "compare", tmp_path / "a", tmp_path / "b", "--names", "one"], "--names 'one'")
    cli.user_error(["benchmark", "compare", tmp_path / "a", tmp_path / "nowhere"], "no results.json")
    ok = cli(["benchmark", "compare", tmp_path / "a", tmp_path / "b", "--names", "gan,infogan", "--out",
              tmp_path / "cmp.md"])
    assert ok.code == 0, ok
    assert (tmp_path / "cmp.md").read_text() == comparison_markdown(compare_latents(a, b), ("gan", "infogan"))
