"""Source of the book's chapters: `python scripts/chapters_src.py` writes chapters/*.ipynb.

Chapters are edited here, as plain Python, and written out as notebooks (without outputs;
cells marked NBVAL_CHECK_OUTPUT get their stored output from scripts/store_outputs.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

PARAMETERS = '''import os

profile = os.environ.get("BNLIB_PROFILE", "cpu")  # smoke | cpu | paper
models = None         # e.g. ["resnet-14", "resnet-110"]; None: the profile's networks
modes = None          # e.g. ["bn", "all"]; None: each figure's own modes
seeds = None          # replicates per experiment; None: the profile's
epochs = None         # None: the profile's (paper: 160)
device = "auto"       # auto | cpu | cuda
data = None           # None: the profile's data set
runs_dir = None       # None: the profile's results store
train_missing = None  # None: train missing runs only in the smoke profile'''

SETUP = '''import pandas as pd

from bnlib import analysis, book, claims, figures, models as nets, results
from bnlib.profiles import PROFILES

plan = book.setup(profile=profile, models=models, modes=modes, seeds=seeds, epochs=epochs,
                  device=device, data=data, runs_dir=runs_dir, train_missing=train_missing)
print(f"profile {plan.profile.name}: {plan.scale()}, networks {', '.join(plan.networks())}, results in {plan.store}")'''


OTHER_SCALES = """
## At the paper's scale, on a GPU

The same from the other profiles' runs this book ships, shown apart (a curve drawn across two
scales would mean nothing). The `paper` profile's runs follow Appendix B at 160 epochs and were
trained on a GPU lent for a few minutes, so they cover only the first networks of its grid;
every title gives their epochs, seeds, data and hardware.
"""


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def chapter(title_cells, *cells):
    return [*title_cells, code(PARAMETERS, "parameters"), code(SETUP), *cells]


CHAPTERS = {
    "01-introduction": chapter(
        [md("""
# Introduction and the claims scoreboard

This book re-runs Frankle, Schwab & Morcos, *Training BatchNorm and Only BatchNorm: On the
Expressive Power of Random Features in CNNs*. Freeze every convolution and the output layer of
a CIFAR-10 ResNet at its random initialisation, train only BatchNorm's per-channel scale γ and
shift β, and the network still learns: the paper reports 69.7% for ResNet-110 and 83% for
ResNet-866. Each chapter is one section of the paper, re-computed by the `bnlib` package.

Every number below says at what scale it was obtained: which networks, how many epochs and
seeds, and which data (the paper trains 160 epochs on CIFAR-10 with 5 seeds; our CPU results
use fewer epochs, smaller networks and a JPEG re-encoding of CIFAR-10). The few runs at the
paper's own scale, 160 epochs on a GPU, are shown apart, in sections of their own.
""")],
        md("""
## The claims scoreboard

Every quantitative claim of the paper (from `data/paper/claims.csv`): the paper's value, ours,
what "holds" means for it, whether it holds, and the scale of ours (networks, epochs, seeds,
data). Two kinds of claim:

* **values**: an accuracy or a statistic the paper reports at its scale (160 epochs, up to
  ResNet-866 and WRN-14-32). Ours holds if it lies within the tolerance. At a smaller scale
  these are expected to fail; the row still says how far we are.
* **trends**: a direction the paper's argument rests on (accuracy rising with depth and width,
  BatchNorm-only training far above training nothing and below training everything, more γ
  near zero when training only BatchNorm, γ mattering more than β). Ours holds if it has the
  paper's sign. These are what a CPU-scale reproduction can test.

Ours is the mean over seeds. Where a claim's runs span several seeds, "per seed" gives ours
from each seed alone and in how many seeds the claim holds: a verdict that flips between seeds
is within the noise of this scale. A seed counts only if it has every network the mean used
(a gap pairs the runs of one seed).

"not run" means the results store holds no run for that claim at this profile's scale (most
value claims are about networks far larger than a CPU trains); the chapter that owns the
figure says how to produce it.
"""),
        code('''board = claims.scoreboard(results.load(plan.store))
board[board["kind"] == "trend"]'''),
        code('''board[board["kind"] == "value"]'''),
        code('''pd.crosstab(board["kind"], board["holds"])'''),
        md("""
### The scoreboard at the paper's scale, on a GPU

Runs of other profiles are scored on their own (a trend drawn across two scales would mean
nothing). The `paper` profile's runs follow Appendix B at 160 epochs and were trained on a GPU
lent for a few minutes, so they answer only the claims about their networks; chapter 9 sets
them beside the CPU-scale results.
"""),
        code('''for other in book.other_scales(plan):
    other_board = claims.scoreboard(results.load(other.store))
    print(f"{other.profile.name} profile ({other.store}): the claims its runs answer")
    display(other_board[other_board["holds"] != "not run"])'''),
        md("""
## What was run

Every experiment in this profile's results store: finished runs, seeds, epochs, hours of
training (per-epoch test evaluation included, clamping not), training images per second, and
the hardware and data each ran on. First, how much of the profile's grid (every run the
chapters need) is stored, and which networks and seeds are still to run.
"""),
        code('''inventory = analysis.run_inventory(results.load(plan.store))
print(f"{int(inventory['runs'].sum())} runs, {inventory['train_hours'].sum():.1f} hours of training")
stored, missing = plan.match(plan.all_runs())
print(f"this profile's grid ({plan.scale()}): {len(stored) + len(missing)} runs, {len(stored)} stored, "
      f"{len(missing)} not run yet")
if missing:
    print(pd.Series([f"{c.model.model} seed {c.train.seed}" for c in missing]).value_counts(sort=False).to_string())
inventory'''),
        code('''for other in book.other_scales(plan):
    other_inventory = analysis.run_inventory(results.load(other.store))
    print(f"{other.profile.name} profile: {int(other_inventory['runs'].sum())} runs, "
          f"{other_inventory['train_hours'].sum():.2f} hours of training")
    display(other_inventory)'''),
    ),
    "02-architectures": chapter(
        [md("""
# Architectures and parameter counts (Table 1)

The ResNets of He et al. (2015) for CIFAR-10, with depth parameter D and width W: a 3x3
convolution to 16W channels, three stages of D residual blocks with 16W, 32W and 64W
filters, global average pooling and a linear layer to 10 logits. Each block is
conv-BN-ReLU-conv-BN plus the shortcut; the first block of stages 2 and 3 halves the
resolution and its shortcut is a 1x1 convolution followed by BatchNorm. `resnet-N` has
N = 6D + 2 layers; `wrn-14-W` is ResNet-14 W times wider.
""")],
        md("""
The counts are computed from the model code (no weights are allocated: the networks are built
on PyTorch's meta device). Table 1 counts the shortcut's BatchNorm in both the BatchNorm and
the Shortcut columns, and so do we.
"""),
        code('''# NBVAL_CHECK_OUTPUT
table = pd.DataFrame(nets.table1())
print(table.to_string(index=False))'''),
        md("""
Beside the paper's printed values (`data/paper/table1.csv`). The paper rounds some counts and
truncates others (ResNet-14's 2,752 shortcut parameters are printed 2.7K); one cell disagrees
with its own architecture: WRN-14-32's output layer has 64·32·10 + 10 = 20,490 parameters,
printed 21K. The tests check every cell.
"""),
        code('''# NBVAL_CHECK_OUTPUT
paper = pd.read_csv(claims.PAPER_TABLE1, dtype=str).set_index("network")
ours = table.set_index("network")
print(pd.concat({"paper": paper[["batchnorm", "shortcut", "output", "total"]],
                 "ours": ours[["batchnorm", "shortcut", "output", "total"]]}, axis=1).to_string())'''),
        md("""
BatchNorm parameters are at most 0.6% of a network (ResNet-14: 1,120 of 175,258). Deeper
networks add BatchNorm parameters linearly in D; wider ones add them linearly in W but add
convolution weights quadratically.
"""),
    ),
    "03-gamma-beta-all": chapter(
        [md("""
# γ and β when training all parameters (Figure 1)

Before training BatchNorm alone, the paper asks what γ and β do in ordinary training: train
every parameter with γ and β enabled (All), or frozen at their initial values (γ ~ U[0,1],
β = 0) while everything else trains (`trainable="all,-bn"`). The paper finds accuracy about
half a point lower with them frozen, except on the deepest ResNets, where it drops more.
""")],
        code('''runs = book.with_labels(plan.ensure(plan.figure1()))
summary = analysis.replicate_summary(runs, ["model", "mode"])
summary'''),
        code('''for series in ("deep", "wide"):
    if plan.networks(series):
        figures.accuracy_by_network(summary, runs, "mode", f"Figure 1 ({series}): γ and β enabled vs frozen",
                                    list(plan.networks(series))).show()'''),
        md("The paper's claims about Figure 1, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure 1",))'''),
    ),
    "04-training-only-batchnorm": chapter(
        [md("""
# Training only BatchNorm (Figures 2, 3 and 4)

Freeze every convolution and the output layer at their random (He normal) initialisation and
train only γ and β. The baselines: all parameters (All), none (None: only BatchNorm's running
statistics move, so accuracy should be chance). Two more modes make the 1x1 shortcut
convolutions and the output layer trainable, with BatchNorm (BN+S+O) and without (S+O).
""")],
        code('''runs = book.with_labels(plan.ensure(plan.figure2()))
summary = analysis.replicate_summary(runs, ["model", "mode"])
summary.pivot(index="model", columns="mode", values="mean").reindex(list(plan.networks()))'''),
        md("""
## Figure 2: accuracy across depth and width
"""),
        code('''for series in ("deep", "wide"):
    if plan.networks(series):
        figures.accuracy_by_network(summary, runs, "mode", f"Figure 2 ({series})", list(plan.networks(series))).show()'''),
        md("""
How each mode's accuracy moves with depth and with width at this scale (computed from the
runs above; the paper: every mode rises with depth and width, BN from 48% on ResNet-14 to 83%
on ResNet-866 and 74% on WRN-14-32):
"""),
        code('''for series in ("deep", "wide"):
    for mode in ("All", "BN", "BN+S+O", "S+O", "None"):
        print(series, book.trend(summary, mode, list(plan.networks(series))))'''),
        md("""
## Figure 3: learning curves of the case-study network

The paper's case study is ResNet-110: training only BatchNorm learns at about the same rate as
training everything, with the same jumps when the learning rate drops.
"""),
        code('''case = plan.case_study()
metrics = book.with_labels(results.load_metrics(plan.store))
if len(metrics):
    metrics = metrics[metrics["run_dir"].isin(runs["run_dir"]) & (metrics["model"] == case)
                      & metrics["mode"].isin(["All", "BN", "BN+S+O"])]
    figures.accuracy_curves(metrics, "mode", f"Figure 3: test accuracy of {case} during training").show()'''),
        md("""
## Figure 4: accuracy per doubling of BatchNorm parameters

Deeper and wider networks both have more BatchNorm parameters (and more random features to
combine). The paper finds accuracy linear in the number of doublings, with depth 17% steeper
than width.
"""),
        code('''bn_only = summary[summary["mode"] == "BN"]
slopes = analysis.depth_width_slopes(bn_only)
print({k: round(v, 2) for k, v in slopes.items()}, "points per doubling")
if len(slopes) == 2:
    print(f"depth / width slope: {slopes['deep'] / slopes['wide']:.2f} (paper: 1.17)")
figures.accuracy_vs_bn_parameters(bn_only, runs).show()'''),
        md(OTHER_SCALES),
        code('''for other in book.other_scales(plan):
    found = book.stored(other, other.figure2())
    if len(found):
        other_summary = analysis.replicate_summary(found, ["model", "mode"])
        display(other_summary.pivot(index="model", columns="mode", values="mean"))
        figures.accuracy_by_network(other_summary, found, "mode", f"Figure 2 ({other.profile.name} profile)",
                                    list(dict.fromkeys(found["model"]))).show()'''),
        md("The paper's claims about Figures 2 and 4, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure 2", "Figure 4"))'''),
    ),
    "05-initialisation": chapter(
        [md("""
# Initialisation (Appendices C and D)

Does the kind of random feature matter? Appendix C trains only BatchNorm on top of features
drawn by He normal (the default), He uniform, binary ±σ per layer, and orthogonalised normal
samples: the paper finds no difference. Appendix D varies BatchNorm's own initialisation:
γ = 1; γ ~ U[-1, 1]; and γ = β = 1, which the paper finds adds 1 to 3 points when training
only BatchNorm but hurts (or breaks) training all parameters.
""")],
        md("## Appendix C: feature initialisation (BatchNorm only)"),
        code('''features = plan.ensure(plan.feature_init_grid())
analysis.replicate_summary(features, ["model", "feature_init"])'''),
        md("## Appendix D: BatchNorm initialisation"),
        code('''inits = book.with_labels(plan.ensure(plan.bn_init_grid()))
init_summary = analysis.replicate_summary(inits, ["model", "mode", "bn_init"])
init_summary.pivot_table(index=["model", "bn_init"], columns="mode", values="mean")'''),
        code('''import plotly.express as px

if len(init_summary):
    fig = px.bar(init_summary, x="bn_init", y="mean", error_y="std", color="mode", barmode="group",
                 facet_col="model", title="BatchNorm initialisation<br><sup>ours: " + analysis.scale_note(inits) + "</sup>",
                 labels={"mean": "test accuracy (%)"})
    fig.show()'''),
        md("""
Figure A4's question: with γ = β = 1, how are γ and β distributed after training? The paper
finds far fewer γ near zero when training only BatchNorm than under the default init.
"""),
        code('''gammas = analysis.gamma_table(inits) if len(inits) else inits
if len(gammas):
    display(gammas.groupby(["model", "mode", "bn_init"])[["gamma_mean", "gamma_std", "gamma_frac_abs_below_0.01",
                                                        "gamma_frac_abs_below_0.1", "beta_mean"]].mean())'''),
        md("The paper's claims about initialisation, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure A2", "Figure A3"), ids="init|beta-one")'''),
    ),
    "06-gamma-beta-values": chapter(
        [md("""
# The values of γ and β (Figures 5 and 6)

How do networks that can only shift and rescale random features use γ and β? The paper's
ResNet-110: when training only BatchNorm, 27% of γ have |γ| < 0.01 and a quarter are
negative; when training everything, γ is roughly Gaussian (mean 0.27, std 0.21) with a much
smaller spike at zero.
""")],
        code('''runs = book.with_labels(plan.ensure(plan.gamma_grid()))
table = analysis.gamma_table(runs) if len(runs) else runs
stats = ["gamma_mean", "gamma_std", "gamma_frac_abs_below_0.01", "gamma_frac_abs_below_0.1",
         "gamma_frac_negative", "beta_mean", "beta_std"]
table.groupby(["model", "mode"])[stats].mean() if len(table) else table'''),
        md("## Figure 5: distributions of γ and β (all layers pooled)"),
        code('''case = plan.case_study()
pooled = book.pooled_batchnorm(runs, case)
if pooled:
    figures.gamma_beta_histograms(pooled, runs[runs["model"] == case], case).show()''', ),
        md("""
## Figure 6: fraction of γ below each threshold, across depth and width

The paper: when training only BatchNorm, |γ| < 0.1 for a quarter to a third of channels at
every depth and width; when training everything, about 3% except the deepest networks
(69% for ResNet-866).
"""),
        code('''if len(table):
    figures.gamma_fractions_by_network(table, list(plan.networks()), "mode").show()'''),
        md(OTHER_SCALES),
        code('''for other in book.other_scales(plan):
    found = book.stored(other, other.gamma_grid())
    if len(found):
        display(analysis.gamma_table(found).groupby(["model", "mode"])[stats].mean())
        for network in dict.fromkeys(found["model"]):
            figures.gamma_beta_histograms(book.pooled_batchnorm(found, network), found[found["model"] == network],
                                          f"{network} ({other.profile.name} profile)").show()'''),
        md("The paper's claims about Figures 5 and 6, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure 5", "Figure 6"))'''),
    ),
    "07-clamping": chapter(
        [md("""
# Clamping and binarising γ (Figure 7)

Small γ look like disabled features. Are they? Set every γ with |γ| below a threshold to
exactly zero and re-evaluate the trained network. The paper: clamping below 0.01 costs nothing
in any network; below 0.1, ResNet-110 and deeper lose one to two points when training only
BatchNorm. Binarising the rest (to ±1, or to ± the mean |γ|) drops accuracy to chance.
""")],
        code('''runs = book.with_labels(plan.ensure(plan.gamma_grid()))
curves = book.clamping_curves(plan, runs)
# accuracy (%) after clamping |γ| < threshold to 0, mean over seeds; the fraction clamped is in the figure
curves[curves["keep"] == "value"].pivot_table(index=["model", "mode"], columns="threshold",
                                              values="test_accuracy") if len(curves) else curves'''),
        md("""
## Figure 7, with a slider

Move the slider: each threshold's accuracies are precomputed, so this works in the static book.
"""),
        code('''if len(curves):
    figures.clamping_slider(curves, runs, list(plan.networks())).show()'''),
        code('''if len(curves):
    figures.clamping_lines(curves[curves["model"] == plan.case_study()], runs).show()'''),
        md(OTHER_SCALES),
        code('''for other in book.other_scales(plan):
    found = book.stored(other, other.gamma_grid())
    other_curves = book.clamping_curves(other, found)
    if len(other_curves):
        display(other_curves[other_curves["keep"] == "value"].pivot_table(
            index=["model", "mode"], columns="threshold", values="test_accuracy"))
        figures.clamping_lines(other_curves, found).show()'''),
        md("The paper's claims about clamping and binarising, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure 7", "Section 5"))'''),
        md("""
## Live: clamp a trained network yourself

In Jupyter (not in the static page), this slider re-evaluates the case-study network trained
only on BatchNorm at whatever threshold you choose.
"""),
        code('''live = book.live_run(plan, runs)
if live:
    display(book.clamping_explorer(plan, live))
else:
    print(f"No BatchNorm-only run of {plan.case_study()} with its weights and data on this machine (weights are "
          f"not committed). Train one into a store of your own, then re-run this chapter with runs_dir='runs':"
          f"\\n  python -m bnlib train --model {plan.case_study()} --trainable bn --epochs {plan.n_epochs} "
          f"--data {plan.data_source} --runs-dir runs")'''),
    ),
    "08-ablation": chapter(
        [md("""
# Ablating γ, β and normalisation (Appendix E)

Which of BatchNorm's three pieces carry the BatchNorm-only accuracy? Train γ and β with
normalisation (γ/β/N), γ alone (γ/N), β alone (β/N), or γ and β with the normalisation
switched off (γ/β: the layer computes γx + β). The paper: γ/N is a few points below γ/β/N and
well above β/N; removing normalisation costs a few points, and deep networks without it do
not train at all.
""")],
        code('''from bnlib.profiles import ABLATIONS

runs = plan.ensure(plan.ablation_grid())
labels = {(mode, norm): label for label, mode, norm in ABLATIONS}
if len(runs):
    runs = runs.assign(ablation=[labels.get((t, bool(n)), t) for t, n in zip(runs["trainable"], runs["normalize"])])
    summary = analysis.replicate_summary(runs, ["model", "ablation"])
    display(summary)
    figures.accuracy_by_network(summary, runs, "ablation", "Appendix E: γ, β and normalisation",
                                sorted(set(runs["model"]))).show()'''),
        md("The paper's claims about Appendix E, beside ours (from the claims scoreboard):"),
        code('''book.paper_vs_ours(plan, ("Figure A1",))'''),
    ),
    "09-differences": chapter(
        [md("""
# Where this book differs from the paper, and why

| what | the paper | this book | why |
|---|---|---|---|
| data | CIFAR-10 | CIFAR-10 where it can be downloaded; otherwise a JPEG re-encoding of it (pixels differ slightly: per-channel means agree to 1e-4, standard deviations to 2e-3) | the machines that built this book have no internet; every result names its data |
| scale | 160 epochs, 13 networks, 5 seeds | `paper` profile: the same. `cpu` profile: 2 epochs (lr 0.1, then 0.01), ResNet-14/32/56 and WRN-14-2/4 (WRN-14-1 is ResNet-14), 3 seeds for ResNet-14, 2 for ResNet-32 and WRN-14-2, 1 for ResNet-56 and WRN-14-4; Appendices C-E on ResNet-14 only; ResNet-32 is the case study of Figures 3, 5 and 7 instead of ResNet-110 | the whole `cpu` profile was sized for about 12 hours of a 2-core CPU (chapter 1's "What was run" gives the hours each experiment measured, and its images/s) |
| input normalisation | "per-pixel" | per channel, with the training set's own mean and standard deviation | the authors' framework normalises per channel (with ImageNet's constants) |
| BatchNorm init | γ ~ U[0,1], β = 0, "the default in our version of PyTorch" | the same, set explicitly | PyTorch's default became γ = 1; the authors' framework had a bug that skipped its BatchNorm init |
| orthogonal features | normal samples orthogonalised by SVD | the same (U Vᵀ of the SVD), scaled by √2 so the per-weight variance matches He normal when fan-in ≥ fan-out | the authors' framework uses `torch.nn.init.orthogonal_` (QR, gain 1) |
| binary features | ±σ per layer | ±√(2 / fan-in), He normal's σ | |
| output-layer bias | PyTorch's default | 0 | every feature init starts from the same bias |
| Table 1 | rounded or truncated, one typo | exact counts from the code | WRN-14-32's output layer has 20,490 parameters, printed 21K |
| shortcut BatchNorm | counted in both the BatchNorm and Shortcut columns | the same: `trainable="shortcut"` includes it, `"bn"` includes it too | Table 1 does so |
| epoch | — | 391 steps (the last batch of 80 is kept), lr dropped at 50% and 75% of the epochs | as in the authors' framework |
| γ/β frozen (Figure 1) | "disabled" | frozen at the init, γ ~ U[0,1] | the paper's caption says "frozen at their initial values" |
""")],
        md("""
## At CPU scale: what differs, and what still agrees

The `cpu` profile changes three things at once, and each moves the numbers:

* **Two epochs instead of 160.** The networks are far from converged, so every claim about an
  absolute accuracy or about the final values of γ is expected to fail, and does not say
  whether the paper is right. Over two epochs γ moves only as far as its gradients take it
  (weight decay alone, amplified by momentum, would shrink it by about 4%), so a spike of γ at zero has had little
  time to form. A trend over networks also mixes two things at this scale: how much a network
  can express and how fast it learns in 782 steps.
* **Smaller networks.** Depth goes to ResNet-56 and width to WRN-14-4: two to three doublings
  of BatchNorm parameters instead of six (ResNet-866) and five (WRN-14-32). The claims about
  the deepest and widest networks are not run.
* **The JPEG copy of CIFAR-10.** Re-encoding changes pixels slightly (per-channel means agree
  to 1e-4); its effect on accuracy was not measured here, since the original files cannot be
  downloaded on these machines. Every figure and table names the data it used.

What still agrees is a question for the results, not for this text: every claim of the
scoreboard that the runs this book ships answer is below, trends first. For a trend, "yes"
means our runs move in the paper's direction; for a value (clamping |γ| < 0.01, binarising γ,
the accuracies of ResNet-14), that ours lies within the paper's tolerance. "per seed" says
whether each seed alone agrees: a verdict that holds in the mean but not in every seed is
within this scale's noise. The chapters show the curves behind each line.
"""),
        code('''board = claims.scoreboard(results.load(plan.store))
answered = board[board["holds"] != "not run"].sort_values("kind", kind="stable")  # "trend" < "value"
answered[["id", "kind", "claim", "paper", "ours", "holds", "per seed", "scale"]]'''),
        md("""
## At the paper's scale on a GPU: what 160 epochs change

Where a GPU was lent, the `paper` profile ran as far as the lease allowed (chapter 1's "What
was run" lists its runs and hours; `scripts/paper_on_gpu.py` chose them from speeds it
measured on the GPU). Its runs use the same code, recipe, seeds and data as the CPU runs; what
differs is the number of epochs (160 instead of 2) and the machine (a GPU, where PyTorch runs
convolutions in TF32 by default, and the torch version installed there; every run records
both). Every claim that both scales answer, side by side: where the CPU column says "no" and
the GPU column "yes", two epochs were too few to test the claim.
"""),
        code('''book.scales_side_by_side(plan)'''),
        md("The data set this profile reads, as every run records it:"),
        code('''from bnlib import data as data_lib

if plan.fingerprint() is not None:
    described = data_lib.load(plan.data_source).describe()
    print(data_lib.describe_source(described["data_source"]), described)
else:
    print("the data of this profile is not readable here:", plan.data_source)'''),
    ),
}


def write(names: list[str] | None = None) -> None:
    out = ROOT / "chapters"
    out.mkdir(exist_ok=True)
    for name, cells in CHAPTERS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells)
        for i, cell in enumerate(nb.cells):  # stable ids: regenerating a chapter changes only what changed
            cell.id = f"{name[:2]}-{i:02d}"
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, out / f"{name}.ipynb")
        print("wrote", out / f"{name}.ipynb")


if __name__ == "__main__":
    write(sys.argv[1:] or None)
