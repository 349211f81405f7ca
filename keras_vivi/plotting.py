"""Figures for the PNG reports, drawn without pyplot.

pyplot's global backend would have to be switched to Agg for headless runs, which also turns
off inline plots in a notebook that imports the package; a bare `Figure` needs no backend.
"""

from matplotlib import figure


def subplots(nrows=1, ncols=1, *, figsize=None, dpi=100, **kwargs):
  """`(Figure, axes)` like `pyplot.subplots`; save with `fig.savefig(path)`."""
  fig = figure.Figure(figsize=figsize, dpi=dpi)
  return fig, fig.subplots(nrows, ncols, **kwargs)
