"""The report takes metric columns and defense strengths from the registry and the tables, not from lists."""

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from mibench_core import registry
from mibench_core.metrics.common import MetricContext
from mibench_core.report import aggregate, figures, perspectives


def table(tmp_path, columns_json=True):
    df = pd.DataFrame(
        {
            "run": ["d.t.none.gmi", "d.t.none.kedmi"],
            "dataset": ["d", "d"], "target": ["t", "t"], "defense": ["none", "none"], "attack": ["gmi", "kedmi"],
            "target_test_acc": [0.9, 0.9],
            "acc1": [0.5, 0.25],
            "brightness": [0.125, 0.75],  # a metric no module declares
            "acc1.strict": [0.375, math.nan],  # a second, labelled accuracy entry
            "missing_reasons": [json.dumps({}), json.dumps({"acc1.strict": "no value"})],
        }
    )  # fmt: skip
    if columns_json:
        df["metric_columns"] = json.dumps(["acc1", "brightness", "acc1.strict"])
    path = tmp_path / "attacks.parquet"
    df.to_parquet(path)
    return path


def test_metric_columns_are_the_reported_ones_in_job_order(tmp_path):
    df = pd.read_parquet(table(tmp_path))
    assert aggregate.metric_columns(df) == ["acc1", "brightness", "acc1.strict"]
    # a table without the record (made by hand): the columns the registry declares
    assert aggregate.metric_columns(pd.read_parquet(table(tmp_path, columns_json=False))) == ["acc1"]


def test_values_are_ordered_by_the_configured_metrics_then_their_declarations():
    metrics = [{"name": "prdc", "label": "prdc"}, {"name": "accuracy", "label": "accuracy"},
               {"name": "accuracy", "label": "strict"}]  # fmt: skip
    overall = dict.fromkeys(["acc1", "acc1.strict", "acc5", "acc5.strict", "coverage", "density", "extra",
                             "precision", "recall"])  # fmt: skip
    assert aggregate._value_order(metrics, overall) == ["precision", "recall", "density", "coverage", "acc1", "acc5",
                                                        "acc1.strict", "acc5.strict", "extra"]  # fmt: skip


def test_column_titles_come_from_the_declarations():
    assert aggregate.column_title("acc1") == ("Acc@1 (eval model)", "higher = stronger attack")
    assert aggregate.column_title("acc1.strict") == ("Acc@1 (eval model) [strict]", "higher = stronger attack")
    assert aggregate.column_title("knn_dist") == ("KNN distance", "lower = closer to private data")
    assert aggregate.column_title("density") == ("density", "")
    assert aggregate.column_title("brightness") == ("brightness", "")


def test_undeclared_and_labelled_metrics_reach_the_table_and_the_chart(tmp_path, monkeypatch):
    path = table(tmp_path)
    figures.markdown_table(str(path), str(tmp_path / "attacks.md"))
    md = (tmp_path / "attacks.md").read_text().splitlines()
    assert md[0] == "| dataset | target | defense | attack | target_test_acc | acc1 | brightness | acc1.strict |"
    assert md[2] == "| d | t | none | gmi | 0.9 | 0.5 | 0.125 | 0.375 |"
    assert md[3] == "| d | t | none | kedmi | 0.9 | 0.25 | 0.75 | missing |"
    titles = []
    real = figures._savefig
    monkeypatch.setattr(figures, "_savefig", lambda fig, p: (titles.extend(a.get_title() for a in fig.axes
                                                                           if a.axison), real(fig, p)))  # fmt: skip
    figures.comparison_chart(str(path), str(tmp_path / "cmp.png"))
    assert titles == ["Acc@1 (eval model)\n(higher = stronger attack)", "brightness",
                      "Acc@1 (eval model) [strict]\n(higher = stronger attack)"]  # fmt: skip


class _Eval(nn.Module):
    def features(self, x):
        return x.flatten(1)

    def head(self, f):
        return f[:, :3]


@pytest.mark.parametrize("name", sorted(registry.REGISTRIES["metric"]))
def test_every_value_a_metric_reports_is_declared(name):
    """Each metric on tiny data (weight-based ones report their values missing): the names it
    reports are exactly the columns its registry entry declares."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    private = torch.randint(0, 256, (12, 1, 12, 12), generator=gen, dtype=torch.uint8)
    ctx = MetricContext(torch.rand(10, 1, 12, 12, generator=gen) * 2 - 1, labels, private, labels.repeat(2)[:12],
                        _Eval(), torch.device("cpu"), gen)  # fmt: skip
    entry = registry.get("metric", name)
    result = registry.load(entry)(ctx, **entry.defaults)
    assert set(result.overall) == set(entry.columns), name


def test_columns_are_declared_once_and_well_formed():
    seen: dict[str, str] = {}
    for entry in registry.REGISTRIES["metric"].values():
        assert entry.columns, f"metric {entry.name!r} declares no columns"
        for col in entry.columns:
            assert col not in seen, f"{col!r} declared by {seen.get(col)} and {entry.name}"
            seen[col] = entry.name
    with pytest.raises(registry.RegistryError, match="better"):
        registry._check_columns({"x": {"label": "X", "better": "up"}}, "here")
    with pytest.raises(registry.RegistryError, match="label"):
        registry._check_columns({"x": {"better": "lower"}}, "here")


def test_defense_strength_labels_come_from_the_registry(monkeypatch):
    row = {"target.defense.name": "bido", "target.defense.params.a1": 0.05, "target.defense.params.a2": 0.5,
           "target.defense.params.estimator": "hsic", "target.defense.params.sigma": 5.0}  # fmt: skip
    assert perspectives.strength(row) == "a1=0.05, a2=0.5, estimator=hsic"
    assert perspectives.strength({"target.defense.name": "none"}) == "-"
    assert perspectives.strength({"target.defense.name": "gone-from-the-registry"}) == "-"
    for entry in registry.REGISTRIES["defense"].values():
        assert set(entry.strength) <= set(entry.defaults), entry.name  # strength keys are parameters
    # a new defense: its entry's ``strength`` is all the report needs
    new = registry.Entry("noisy-labels", "defense", "mibench_core.defenses.mid", "x", "d", {"rate": 0.1},
                         strength=("rate",))  # fmt: skip
    monkeypatch.setitem(registry.REGISTRIES["defense"], "noisy-labels", new)
    assert perspectives.strength({"target.defense.name": "noisy-labels", "target.defense.params.rate": 0.2}) == (
        "rate=0.2"
    )
