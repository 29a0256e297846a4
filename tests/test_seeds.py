"""Seeds as an axis (ganrun.metrics.seeds): intervals with known answers, grouping by setting, and the
sweep table and `ganrun report` pooling the seeds of each setting."""

import json
import math

import pytest

from conftest import TINY, TINY_MODEL, run_cli

from ganrun.commands import report
from ganrun.commands.sweep import format_table
from ganrun.metrics import seeds


def test_mean_interval_is_student_t_by_hand():
    est = seeds.mean_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.302653
    assert est.mean == 2.0 and est.n == 3
    assert est.half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    one = seeds.mean_interval([5.0])
    assert one.mean == 5.0 and math.isnan(one.half) and one.text() == "5"
    with pytest.raises(ValueError):
        seeds.mean_interval([])


def test_welch_interval_by_hand():
    a, b = [10.0, 12.0, 14.0], [1.0, 2.0, 3.0, 4.0]
    diff, low, high = seeds.difference_interval(a, b)
    va, vb = 4.0 / 3, (5 / 3) / 4  # variances of the means
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)
    from scipy import stats
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert diff == pytest.approx(12 - 2.5)
    assert (low, high) == pytest.approx((diff - half, diff + half))


def runs(values: dict[str, list[float]]) -> list[dict]:
    """Constructed completed runs: setting -> each seed's fd."""
    return [{"run": f"{s}-{i}", "status": "completed", "overrides": [s, f"train.seed={i}"],
             "metrics": {"fd": v}, "step": 10, "losses": {}}
            for s, vs in values.items() for i, v in enumerate(vs)]


def test_a_real_difference_is_found_and_noise_is_not():
    rows = runs({"loss=gan": [10.0, 10.5, 9.5, 10.2, 9.8],
                 "loss=hinge": [20.0, 20.5, 19.5, 20.2, 19.8],  # 10 worse, seed spread 0.4: a difference
                 "loss=lsgan": [10.3, 9.1, 11.0, 9.6, 10.4]})  # same mean as gan within the noise
    lines = seeds.differences(rows)
    assert len(lines) == 3
    verdicts = {line.split(":")[1].strip().split(" = ")[0]: line.rsplit(": ", 1)[1] for line in lines}
    assert verdicts["[loss=gan] - [loss=hinge]"] == "differ"
    assert verdicts["[loss=hinge] - [loss=lsgan]"] == "differ"
    assert verdicts["[loss=gan] - [loss=lsgan]"] == "within the seed noise"
    assert seeds.by_chance(lines).startswith("3 comparisons at 95%: about 0.15 would")  # 3 x 5% false alarms


def test_grouping_ignores_the_seed_and_incomplete_runs():
    rows = runs({"loss=gan": [1.0, 3.0], "loss=hinge": [5.0]})
    rows.append({"run": "x", "status": "failed", "overrides": ["loss=gan", "train.seed=9"]})
    rows.append({"run": "y", "status": "completed", "overrides": ["loss=gan", "++train.seed=7"], "metrics": {"fd": 2.0}})
    groups = seeds.group_by_setting(rows)
    assert [len(v) for v in groups.values()] == [3, 1]
    header, body = seeds.grouped_table(rows)
    assert header == ["setting", "n", "fd"]
    expected = seeds.mean_interval([1.0, 3.0, 2.0])
    assert body[0] == ["loss=gan", "3", f"2 ± {expected.half:.2g}"] and body[1] == ["loss=hinge", "1", "5"]
    assert not seeds.has_seeds(runs({"loss=gan": [1.0], "loss=hinge": [2.0]}))


def test_sweep_table_pools_seeds_only_when_a_setting_repeats():
    single = format_table(runs({"loss=gan": [1.0], "loss=hinge": [2.0]}))
    assert "over seeds" not in single
    pooled = format_table(runs({"loss=gan": [1.0, 1.2, 0.9], "loss=hinge": [5.0, 5.5, 4.8]}))
    assert "over seeds: mean ± 95% interval (Student t, 95%), n seeds" in pooled
    assert "fd: [loss=gan] - [loss=hinge] = " in pooled and pooled.splitlines()[-2].endswith("differ")
    assert pooled.splitlines()[-1] == "(1 comparisons at 95%: about 0.05 would \"differ\" by chance alone where nothing does)"


def test_report_pools_seeds_and_plots_every_seed(tmp_path):
    for r in runs({"loss=gan": [10.0, 11.0, 12.0], "loss=hinge": [30.0, 31.0, 29.0]}):
        folder = tmp_path / r["run"]
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in r["overrides"]))
        (folder / "summary.json").write_text(json.dumps({k: r[k] for k in ("status", "step", "metrics")}))
    assert report.main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Over seeds" in md
    assert "| loss=gan | 3 | 11 ± 2.5 |" in md  # sd 1, t(0.975, 2) / sqrt(3) = 2.48
    assert "- fd: [loss=gan] - [loss=hinge] = -19" in md and "differ" in md
    assert (tmp_path / "report.png").stat().st_size > 0  # the strip of seeds per setting, no curves logged


@pytest.mark.parametrize("seeds_arg, message", [
    ("train.seed=range(0)", "train.seed=range(0): this sweep has no values, so no run would start"),
    ("train.seed=range(0.5,3)", "train.seed=0.5: Value '0.5' of type 'float' could not be converted to Integer"),
    ("train.seed=a,b", "train.seed=a: Value 'a' of type 'str' could not be converted to Integer"),
])
def test_a_bad_seed_range_is_one_line_and_starts_nothing(tmp_path, seeds_arg, message):
    r = run_cli("train", "-m", "loss=gan,hinge", seeds_arg, "dataset=ring", "model=mlp", *TINY, cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"ganrun train: error: {message}")
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # 4 tiny runs in a subprocess
def test_a_seed_sweep_from_an_empty_folder_tables_each_setting_over_its_seeds(tmp_path):
    r = run_cli("train", "-m", "loss=gan,hinge", "train.seed=range(2)", "dataset=ring", "model=mlp", *TINY,
                *TINY_MODEL["mlp"], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "4 runs" in r.stdout and "over seeds: mean ± 95% interval (Student t, 95%), n seeds" in r.stdout
    pooled = r.stdout[r.stdout.index("over seeds"):]
    assert [line.split()[:2] for line in pooled.splitlines()[3:5]] == [["loss=gan", "2"], ["loss=hinge", "2"]]
    assert "settings compared (Welch t, 95% interval of the difference)" in pooled
    rep = run_cli("report", "outputs/multirun/latest", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "## Over seeds" in (tmp_path / "outputs" / "multirun" / "latest" / "report.md").read_text()


def test_an_infinite_score_gets_no_interval_and_no_comparison():
    rows = runs({"loss=gan": [1.0, float("inf")], "loss=hinge": [2.0, 2.5]})
    assert seeds.grouped_table(rows)[1][0] == ["loss=gan", "2", "inf"]
    assert seeds.differences(rows) == []
