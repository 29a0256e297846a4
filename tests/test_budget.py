"""Budget curves (ganrun.metrics.budget, `ganrun report DIR by=KEY`): the best score after k trials,
over trial orders, on constructed numbers with known answers."""

import json
from math import comb

import pytest

from ganrun.commands import report
from ganrun.errors import ConfigError
from ganrun.metrics import budget


def test_best_after_k_is_the_expected_order_statistic():
    values = [float(v) for v in range(1, 9)]  # 8 trials scoring 1..8, lower is better
    curve = budget.best_after(values, orders=4000)
    assert len(curve) == 8
    assert curve[-1] == (1.0, 1.0, 1.0)  # after every trial: the best, whatever the order
    assert curve[0][0] == pytest.approx(4.5, abs=0.5)  # one trial: the median trial
    # after k trials the best is the i-th smallest with probability C(8-i, k-1) / C(8, k)
    for k in (2, 3):  # medians 3 and 2 (k = 4 sits on the boundary: P(best = 1) = 1/2)
        cdf, i = 0.0, 0
        while cdf < 0.5:
            i += 1
            cdf += comb(8 - i, k - 1) / comb(8, k)
        assert curve[k - 1][0] == pytest.approx(i, abs=0.5)
    assert all(a[0] >= b[0] for a, b in zip(curve, curve[1:]))  # never worse with more trials
    assert budget.best_after(values, lower=False, orders=200)[-1][0] == 8.0  # higher is better: the max


def rows(groups: dict[str, list[float]]) -> list[dict]:
    return [{"run": f"{g}{i}", "status": "completed", "overrides": [f"loss={g}", f"optimizer.lr_g={i}e-4"],
             "metrics": {"fd": v, "recall": 0.5}} for g, vs in groups.items() for i, v in enumerate(vs)]


def write_runs(root, groups: dict[str, list[float]]) -> None:
    """The runs of rows(groups) as run folders under root: overrides and a completed summary each."""
    for r in rows(groups):
        folder = root / r["run"]
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in r["overrides"]))
        (folder / "summary.json").write_text(json.dumps({"status": "completed", "step": 5, "metrics": r["metrics"]}))


def test_groups_by_key_and_a_better_loss_has_a_lower_curve():
    runs = rows({"gan": [30.0, 12.0, 50.0, 20.0], "hinge": [80.0, 65.0, 90.0, 70.0]})
    runs.append({"run": "x", "status": "failed", "overrides": ["loss=gan"]})
    curves = budget.curves(runs, "loss", "fd")
    assert list(curves) == ["gan", "hinge"] and len(curves["gan"]) == 4
    assert all(g[2] < h[1] for g, h in zip(curves["gan"], curves["hinge"]))  # gan's 75% below hinge's 25%
    header, body = budget.table(runs, "loss", "fd")
    assert header == ["loss", "trials", "best of 1", "best of 2", "best of 4"]
    assert body[0][:2] == ["gan", "4"] and body[0][-1] == "12 [12-12]"


def test_report_by_key_writes_the_budget_table_and_plot(tmp_path):
    write_runs(tmp_path, {"gan": [30.0, 12.0, 50.0], "hinge": [60.0, 45.0, 70.0]})
    assert report.main([str(tmp_path), "by=loss"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Budget: the best fd after k trials, by loss" in md and "| gan | 3 |" in md and "12 [12-12]" in md
    assert (tmp_path / "report.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="metric=energy: no run here has it; use one of fd, recall"):
        report.main([str(tmp_path), "by=loss", "metric=energy"])
    with pytest.raises(ConfigError, match="metric= goes with by=KEY"):
        report.main([str(tmp_path), "metric=fd"])


def test_report_colours_runs_by_group_and_names_no_crowd_of_runs():
    runs = rows({"gan": [30.0, 12.0], "hinge": [60.0, 45.0], "lsgan": [80.0]})
    colour, legend = report.run_colours(runs, ("loss", "fd"))
    assert list(legend) == ["loss=gan", "loss=hinge", "loss=lsgan"]  # one legend entry per group, not per run
    assert colour["gan0"] == colour["gan1"] == legend["loss=gan"] != colour["hinge0"] == legend["loss=hinge"]
    few = rows({"gan": [1.0, 2.0, 3.0]})
    assert len(set(report.run_colours(few, None)[0].values())) == 3 and len(report.run_colours(few, None)[1]) == 3
    crowd = rows({"gan": [float(v) for v in range(report.MAX_LEGEND + 1)]})
    assert report.run_colours(crowd, None)[1] == {}  # past MAX_LEGEND runs the legend would cover the panels


def test_best_of_trials_differences_tell_a_real_gap_from_the_luck_of_the_draw():
    far = rows({"gan": [10.0, 12.0, 11.0, 13.0, 12.5], "hinge": [40.0, 42.0, 41.0, 45.0, 43.0]})
    ref, lines = budget.compared(far, "loss", "fd")
    assert ref == "gan" and len(lines) == 1 and "worse beyond the noise" in lines[0]  # every hinge trial is worse
    diff, low, high = budget.best_difference([40.0, 42.0, 41.0], [10.0, 12.0, 11.0])
    assert diff == 30.0 and 28.0 <= low <= diff <= high <= 32.0
    mixed = rows({"gan": [10.0, 50.0, 30.0, 70.0], "hinge": [12.0, 45.0, 35.0, 65.0]})  # interleaved: no gap
    _, lines = budget.compared(mixed, "loss", "fd", ref="hinge")
    assert len(lines) == 1 and lines[0].startswith("loss=gan - loss=hinge: -2") and "within the noise" in lines[0]


def test_report_ref_names_the_group_compared_with_and_refuses_an_unknown_one(tmp_path):
    write_runs(tmp_path, {"gan": [30.0, 12.0, 50.0], "hinge": [60.0, 45.0, 70.0]})
    assert report.main([str(tmp_path), "by=loss", "ref=hinge"]) == 0
    assert "- loss=gan - loss=hinge: -33" in (tmp_path / "report.md").read_text()
    with pytest.raises(ConfigError, match="ref=lsgan: no completed run has loss=lsgan; use one of gan, hinge"):
        report.main([str(tmp_path), "by=loss", "ref=lsgan"])
    with pytest.raises(ConfigError, match="ref= goes with by=KEY"):
        report.main([str(tmp_path), "ref=gan"])
