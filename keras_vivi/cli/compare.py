"""`vivi-compare`: model B against baseline A on VTAB-1k from repeated runs (Table 1, Figure 4).

  vivi-compare --a=RUN_A1,RUN_A2,... --b=RUN_B1,RUN_B2,... --output=DIR [--names=VIVI,Ours]

Each RUN is a `vivi-vtab --output` directory holding `results.json`; several per side are
independent repetitions of the protocol (the paper uses 12). Per task and per category mean: the
mean and bootstrapped 95 % interval of each model, Δ = B − A, Welch's two-sided p and the verdict
at `--alpha`, per task after the `--correction` across tasks (none by default, as the paper;
`bh`: Benjamini–Hochberg), which every output names. A directory given twice and two runs of
one side that are copies (same module, config and seed, or identical results without different
seeds) are refused; fewer than 3 runs a side is warned about. Writes `comparison.json`,
`comparison.md` and `relative_increase.png` (Figure 4).
Tasks that only one side has are listed and left out of the comparison. The work is
`keras_vivi.evaluation.comparison`'s. `vivi-robustness --output` directories compare the same
way, Table 5's cells (Δ aside) taking the place of tasks.
"""

import os

from absl import app
from absl import flags

from keras_vivi.cli import errors
from keras_vivi.evaluation import statistics

_A = flags.DEFINE_list("a", None, "Baseline runs: vivi-vtab output directories.", required=True)
_B = flags.DEFINE_list("b", None, "Compared runs: vivi-vtab output directories.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Directory for the comparison files.",
                              required=True)
_NAMES = flags.DEFINE_list("names", ["A", "B"], "Display names of the two models.")
_ALPHA = flags.DEFINE_float("alpha", 0.05, "Two-sided significance level (the paper: 0.05).",
                            lower_bound=0.0, upper_bound=1.0)
_CORRECTION = flags.DEFINE_enum("correction", "none", statistics.CORRECTIONS,
                                "Adjustment of the tasks' p-values for their number: none "
                                "(the paper's per-task Welch p), or bh (Benjamini–Hochberg).")

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if len(_NAMES.value) != 2:
    raise app.UsageError(f"--names takes two names, got {_NAMES.value!r}.")
  from keras_vivi.evaluation import comparison as comparison_lib
  try:
    comparison = comparison_lib.compare(_A.value, _B.value, tuple(_NAMES.value),
                                        alpha=_ALPHA.value, correction=_CORRECTION.value)
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  comparison_lib.write(comparison, _OUTPUT.value)
  a, b = comparison["names"]["a"], comparison["names"]["b"]
  for warning in comparison["warnings"]:
    print(f"Warning: {warning}")
  print(f"Multiple-comparison correction: {comparison['correction_name']}.")
  verdicts = [c["verdict"] for c in comparison["tasks"].values()]
  print(f"{b} vs {a} on {len(verdicts)} task(s): {verdicts.count(statistics.BETTER)} "
        f"significantly better, {verdicts.count(statistics.WORSE)} worse, "
        f"{verdicts.count(statistics.NOT_SIGNIFICANT)} not significant"
        + (f", {verdicts.count(statistics.TOO_FEW_RUNS)} with too few runs" if
           statistics.TOO_FEW_RUNS in verdicts else "") + ".")
  for key, label in (("overall", "Overall"), ("partial", "Partial (the VTAB tasks compared)")):
    mean = comparison["means"].get(key)
    if mean:
      p = "–" if mean["p"] is None else format(mean["p"], ".2g")
      print(f"{label}: {a} {comparison_lib.pct(mean['mean_a'])}, "
            f"{b} {comparison_lib.pct(mean['mean_b'])} (p = {p}).")
  if comparison["only_a"] or comparison["only_b"]:
    print(f"Not compared: only {a}: {comparison['only_a']}, only {b}: {comparison['only_b']}.")
  print(f"Wrote {os.path.join(_OUTPUT.value, 'comparison.md')}")


def run():
  errors.run(main)


if __name__ == "__main__":
  run()
