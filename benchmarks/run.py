"""`make bench`: runs the benchmarks and rewrites their sections of benchmarks/RESULTS.md.

Usage: python -m benchmarks.run [NAME ...] [--quick]; sections of benchmarks not run are kept.
"""

import datetime
import os
import platform
import re
import sys

from benchmarks import cli_help, hub_layer, pipeline, prepare, scale_memory, train_step, triplet

BENCHMARKS = {"triplet": triplet, "prepare": prepare, "pipeline": pipeline,
              "train_step": train_step, "hub_layer": hub_layer, "memory": scale_memory,
              "cli_help": cli_help}
RESULTS = os.path.join(os.path.dirname(__file__), "RESULTS.md")
HEADER = ("# Benchmark results\n\nWritten by `make bench` (`python -m benchmarks.run`). Ratios are "
          "measured side by side in one run on a shared, noisy machine; absolute times vary.\n")


def _sections(text):
  parts = re.split(r"^## ", text, flags=re.M)
  return {p.split("\n", 1)[0].strip().split(" ")[0]: "## " + p for p in parts[1:]}


def main(argv):
  quick = "--quick" in argv
  names = [a for a in argv if not a.startswith("--")] or list(BENCHMARKS)
  unknown = set(names) - set(BENCHMARKS)
  if unknown:
    sys.exit(f"Unknown benchmark(s) {sorted(unknown)}; known: {sorted(BENCHMARKS)}.")
  sections = _sections(open(RESULTS).read()) if os.path.exists(RESULTS) else {}
  for name in names:
    module = BENCHMARKS[name]
    print(f"== {name}: {module.TITLE}", flush=True)
    body = module.run(quick=quick)
    stamp = (f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
             f"`python -m benchmarks.run {name}{' --quick' if quick else ''}`")
    sections[name] = f"## {name} — {module.TITLE}\n\n{stamp}\n\n{body}\n\n"
  with open(RESULTS, "w") as f:
    f.write(HEADER + "\n" + "".join(sections[k] for k in BENCHMARKS if k in sections))
  print(f"wrote {RESULTS}")


if __name__ == "__main__":
  main(sys.argv[1:])
