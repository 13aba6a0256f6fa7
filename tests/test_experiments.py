"""bnlib.experiments: the profiles' scales and the grids each figure needs (no I/O)."""

from bnlib.experiments import PROFILES
from bnlib.init import BN_INITS, FEATURE_INITS
from bnlib.plan import Plan


def test_profiles():
    assert PROFILES["paper"].epochs == 160 and PROFILES["paper"].seeds == 5
    assert len(PROFILES["paper"].deep + PROFILES["paper"].wide) == 13
    assert PROFILES["smoke"].data == "synthetic"
    cpu = Plan.from_parameters("cpu")
    gamma = cpu.gamma_grid()  # Figures 5-7: Figure 2's All and BN runs, every network and seed
    assert set(gamma) <= set(cpu.figure2()) and {c.train.trainable for c in gamma} == {"all", "bn"}
    assert len(gamma) == 2 * sum(cpu.seeds_of(n) for n in cpu.networks())


def test_cpu_profile_grid_trains_each_network_once_cheap_and_seed_zero_first():
    from bnlib.architectures import cost
    from bnlib.sweep import profile_grid

    grid = profile_grid("cpu")
    assert len(grid) == len(set(grid)) and "wrn-14-1" not in {c.model.model for c in grid}
    order = [(c.train.seed, cost(c.model.model)) for c in grid]
    assert order == sorted(order) and {c.train.epochs for c in grid} == {PROFILES["cpu"].epochs}
    seeds = {}
    for c in grid:
        seeds.setdefault(c.model.model, set()).add(c.train.seed)
    # the costlier a network, the fewer replicates: the grid fits about 12 hours of the CPU
    assert seeds["resnet-56"] == seeds["wrn-14-4"] == {0}
    assert seeds["resnet-32"] == seeds["wrn-14-2"] == {0, 1} and seeds["resnet-14"] == {0, 1, 2}
    assert len(grid) == 90
    plan = Plan.from_parameters("cpu")
    chapters = plan.figure1() + plan.figure2() + plan.bn_init_grid() + plan.feature_init_grid() + plan.ablation_grid()
    assert set(plan.all_runs()) == set(chapters) == set(grid)  # the sweep trains what the chapters show
    assert plan.scale() == "2 epochs, 3 seed(s) (2 for resnet-32, wrn-14-2; 1 for resnet-56, wrn-14-4)"
    plan = Plan.from_parameters("cpu", seeds=2)  # a chapter that asks for seeds gets them everywhere
    assert {c.train.seed for c in plan.figure2() if c.model.model == "wrn-14-4"} == {0, 1}


def test_init_grids_come_from_the_init_registry(monkeypatch):
    """A new initialisation reaches the book's grids from its registry entry alone."""
    monkeypatch.setitem(BN_INITS, "halves", BN_INITS["ones"])
    monkeypatch.setitem(FEATURE_INITS, "tiny", FEATURE_INITS["he-normal"])
    plan = Plan.from_parameters("cpu")
    assert "halves" in {c.model.bn_init for c in plan.bn_init_grid()}
    assert "tiny" in {c.model.feature_init for c in plan.feature_init_grid()}


def test_the_epoch_ladder_trains_one_seed_of_every_rung_before_any_second_seed():
    from bnlib.experiments import LADDER_EPOCHS, jpeg_price, scale_ladder

    ladder = [(c.model.model, c.train.trainable, c.train.epochs, c.train.seed) for c in scale_ladder("synthetic")]
    assert len(ladder) == len(set(ladder)) == 15
    assert set(ladder) == ({("resnet-14", m, e, 0) for m in ("bn", "all") for e in LADDER_EPOCHS}
                           | {("resnet-14", m, e, 1) for m in ("bn", "all") for e in (4, 8, 16)}
                           | {("resnet-32", "bn", 16, 0)})
    seeds = [seed for *_, seed in ladder]
    assert seeds == sorted(seeds)  # cut short, the ladder still spans every training length
    firsts = [epochs for model, _, epochs, seed in ladder if seed == 0 and model == "resnet-14"]
    assert firsts == sorted(firsts)  # cheapest first
    assert {c.train.lr_drops for c in scale_ladder("synthetic")} == {"0.5,0.75"}  # Appendix B, scaled
    price = jpeg_price({25: "q25.tar.gz", 50: "q50.tar.gz"})
    assert [(c.data.data, c.train.trainable, c.train.epochs) for c in price] == [
        ("q50.tar.gz", "bn", 16), ("q50.tar.gz", "all", 16), ("q25.tar.gz", "bn", 16), ("q25.tar.gz", "all", 16)]


def test_paper_on_cpu_lists_appendix_b_runs_one_figure_at_a_time():
    """The paper's scale on a CPU: 160 epochs, seed 0 first, in the order that completes
    Figures 1-2 at ResNet-14, then the ResNet-110 case study, then Appendices D, E and C."""
    from bnlib.experiments import EXPERIMENT_STORES, PROFILES, paper_on_cpu

    runs = paper_on_cpu("copy.tar.gz")
    key = [(c.model.model, c.train.trainable, c.model.bn_init, c.model.feature_init, c.model.normalize, c.train.seed)
           for c in runs]
    assert len(key) == len(set(key)) == 21
    assert {c.train.epochs for c in runs} == {160} and {c.data.data for c in runs} == {"copy.tar.gz"}
    assert {c.train.lr_drops for c in runs} == {"0.5,0.75"} and {c.train.batch_size for c in runs} == {128}
    assert key[:5] == [("resnet-14", m, "uniform", "he-normal", True, 0)
                       for m in ("none", "bn,shortcut,output", "shortcut,output", "all,-bn")] + [
        ("resnet-110", "bn", "uniform", "he-normal", True, 0)]
    assert key[5:9] == [("resnet-14", "bn", i, "he-normal", True, 0) for i in ("ones", "symmetric", "ones-beta-one")] \
        + [("resnet-14", "all", "ones-beta-one", "he-normal", True, 0)]
    assert key[9:12] == [("resnet-14", "gamma", "uniform", "he-normal", True, 0),
                         ("resnet-14", "beta", "uniform", "he-normal", True, 0),
                         ("resnet-14", "bn", "uniform", "he-normal", False, 0)]
    assert [k[3] for k in key[12:15]] == ["he-uniform", "binary", "orthogonal"]
    assert key[15:17] == [("resnet-110", m, "uniform", "he-normal", True, 0) for m in ("none", "all")]
    assert [(k[1], k[5]) for k in key[17:]] == [("bn", 1), ("all", 1), ("bn", 2), ("all", 2)]
    assert EXPERIMENT_STORES["paper-on-cpu"] == PROFILES["paper"].runs_dir  # beside the GPU runs
    # the sweep trains it one run at a time in this order (the planner groups frozen-convolution
    # runs apart from the others, and once sent all,-bn and ResNet-110 to the end of the list)
    from bnlib.packs import plan_packs
    assert [c for p in plan_packs(runs, max_runs=1) for c in p] == runs
    # every run is one the paper profile's chapters look for: the book picks each up
    paper = set(Plan.from_parameters("paper", data="copy.tar.gz").all_runs())
    assert {c.replace(device="auto") for c in runs} <= paper
