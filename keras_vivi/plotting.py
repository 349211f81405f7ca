"""Figures for the PNG reports, drawn without pyplot, and the conventions every bar chart shares:
values written on the bars, a dotted chance line where a chance level is defined, hatched bars
for a side that has a single run (so no error bar).

pyplot's global backend would have to be switched to Agg for headless runs, which also turns
off inline plots in a notebook that imports the package; a bare `Figure` needs no backend.
"""

from matplotlib import figure

SINGLE_RUN = "single run, no error bar"
SINGLE_RUN_HATCH = "//"
CHANCE = "chance"


def subplots(nrows=1, ncols=1, *, figsize=None, dpi=100, **kwargs):
  """`(Figure, axes)` like `pyplot.subplots`; save with `fig.savefig(path)`."""
  fig = figure.Figure(figsize=figsize, dpi=dpi)
  return fig, fig.subplots(nrows, ncols, **kwargs)


def label_bars(ax, bars, texts, fontsize=7):
  """Writes `texts` on top of `bars` (under them for negative bars); returns the `Text`s."""
  labels = []
  for bar, text in zip(bars, texts):
    height = bar.get_height()
    labels.append(ax.annotate(text, (bar.get_x() + bar.get_width() / 2, height),
                              xytext=(0, 2 if height >= 0 else -2), textcoords="offset points",
                              ha="center", va="bottom" if height >= 0 else "top",
                              fontsize=fontsize))
  return labels


def chance_lines(ax, bars, levels, label=CHANCE):
  """A dotted line at `levels[i]` across `bars[i]` (None: no chance level for it); one legend
  entry. Returns the `LineCollection`, or None when no level is given."""
  spans = [(bar.get_x(), bar.get_x() + bar.get_width(), level)
           for bar, level in zip(bars, levels) if level is not None]
  if not spans:
    return None
  starts, stops, ys = zip(*spans)
  return ax.hlines(ys, starts, stops, colors="black", linestyles=":", linewidth=1.5,
                   label=label, zorder=3)


def mark_single_run(bars):
  """Hatches `bars`: their values come from one run, with no error bar."""
  for bar in bars:
    bar.set_hatch(SINGLE_RUN_HATCH)
    bar.set_edgecolor("black")


def single_run_handle():
  """The legend entry of `mark_single_run`'s hatching."""
  from matplotlib import patches  # pylint: disable=g-import-not-at-top
  return patches.Patch(facecolor="white", edgecolor="black", hatch=SINGLE_RUN_HATCH,
                       label=SINGLE_RUN)


def legend(ax, extra=(), **kwargs):
  """`ax.legend` of the labelled artists plus `extra` handles (e.g. `single_run_handle()`)."""
  handles, _ = ax.get_legend_handles_labels()
  handles = list(handles) + list(extra)
  return ax.legend(handles=handles, **kwargs) if handles else None
