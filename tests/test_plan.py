"""bnlib.plan: a chapter's parameters validated, and a Plan finding stored runs in a store
written as plain files (``tests/stores.py``)."""

import re

import pytest

from bnlib import ConfigError, RunConfig
from bnlib.plan import PROFILES, Plan


def test_plan_finds_stored_runs_and_reports_missing_ones(store, capsys):
    plan = Plan.from_parameters("smoke", models=["resnet-8"], modes=["bn"], seeds=2, runs_dir=str(store),
                                train_missing=False)
    found = plan.ensure(plan.figure2())
    assert len(found) == 2 and set(found["trainable"]) == {"bn"}
    plan = Plan.from_parameters("smoke", models=["resnet-8"], modes=["none"], seeds=1, runs_dir=str(store),
                                train_missing=False)
    assert plan.ensure(plan.figure2()).empty
    message = capsys.readouterr().out
    assert "1 run(s)" in message and "python -m bnlib train --model resnet-8 --trainable none" in message


def test_plan_matches_the_data_only_when_a_chapter_names_it_or_trains(store, monkeypatch):
    fields = dict(models=["resnet-8"], modes=["bn"], seeds=2, runs_dir=str(store), train_missing=False)
    monkeypatch.setattr(Plan, "fingerprint", lambda self: "another-data-set")
    plan = Plan.from_parameters("smoke", **fields)
    assert len(plan.match(plan.figure2())[0]) == 2  # the store's runs, whatever data they used
    for strict in (Plan.from_parameters("smoke", data="synthetic", **fields),
                   Plan.from_parameters("smoke", **{**fields, "train_missing": True})):
        found, missing = strict.match(strict.figure2())
        assert found.empty and len(missing) == 2


def test_wrn_n_1_is_resnet_n_everywhere(store):
    assert RunConfig.from_flat(model="WRN-14-1") == RunConfig.from_flat(model="resnet-14")  # one address
    plan = Plan.from_parameters("smoke", models=["wrn-14-1", "resnet-14"], modes=["bn"], seeds=2,
                                runs_dir=str(store))
    assert plan.networks("deep") == plan.networks("wide") == ("resnet-14",) and len(plan.figure2()) == 2
    found, missing = plan.match(plan.figure2())
    assert not missing and list(found["model"]) == ["resnet-14"] * 2  # the stored runs, once each
    assert Plan.from_parameters("cpu").networks("wide") == ("resnet-14", "wrn-14-2", "wrn-14-4")


@pytest.mark.parametrize("parameters, words", [
    (dict(epochs=-1), "epochs must be a whole number >= 1"),
    (dict(seeds=0), "seeds must be a whole number >= 1"),  # once fell back to the profile's
    (dict(seeds=True), "seeds"),
    (dict(models=[14]), "models must be a list of names"),
    (dict(models="vgg-16"), "unknown model"),
    (dict(modes="-bn"), "removes parts from nothing"),
    (dict(train_missing="yes"), "train_missing"),
    (dict(depth=3), "unknown parameter"),
])
def test_chapter_parameters_are_validated_like_flags(parameters, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Plan.from_parameters("cpu", **parameters)


def test_a_string_where_a_list_is_expected_is_a_list_of_one():
    plan = Plan.from_parameters("cpu", models="resnet-14", modes="bn", epochs=4.0)
    assert plan.networks() == ("resnet-14",) and {c.train.trainable for c in plan.figure2()} == {"bn"}
    assert plan.n_epochs == 4 and isinstance(plan.epochs, int)


def test_the_set_up_line_says_what_came_from_the_profile():
    line = Plan.from_parameters("cpu", epochs=4).summary()
    assert "4 epochs" in line and "the profile's seeds 3" in line and "epochs 2" not in line
    assert "results in data/runs/cpu" in line  # relative to the project: no machine's path


def test_a_chapter_trains_its_missing_runs_in_packs_on_a_gpu(tmp_path, monkeypatch):
    """With train_missing on a GPU the missing runs go through the sweep's pack planner."""
    import bnlib.packs
    import bnlib.train
    import torch

    packs = []
    monkeypatch.setattr(bnlib.train, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(bnlib.train, "train_pack", lambda pack, store, dataset: packs.append(len(pack)) or [])
    plan = Plan.from_parameters("smoke", models=["resnet-8"], modes=["bn", "none"], seeds=3,
                                runs_dir=str(tmp_path), train_missing=True)
    plan.ensure(plan.figure2())
    assert packs == [6]  # one pack: same network, frozen convolutions
    packs.clear()
    monkeypatch.setattr(bnlib.train, "resolve_device", lambda name: torch.device("cpu"))
    plan.ensure(plan.figure2())
    assert packs == [1] * 6
