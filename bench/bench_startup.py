"""How long `ctnodule --help` takes (target <= 0.5 s): the CLI must not load torch, pandas or SciPy to list
its commands. Prints wall and CPU time over several runs, and the heaviest imports of one run."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).with_name("ctnodule")


def main(runs: int = 7) -> None:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([str(BIN), "--help"], check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    walls.sort(), cpus.sort()
    print(f"ctnodule --help over {runs} runs: wall min {walls[0]:.3f} s, median {walls[runs // 2]:.3f} s, "
          f"max {walls[-1]:.3f} s; CPU median {cpus[runs // 2]:.3f} s (target <= 0.5 s)")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import ctnodule.cli"], check=True,
                         capture_output=True, text=True).stderr.splitlines()
    rows = sorted((int(line.split("|")[1]), line.split("|")[2].strip()) for line in out if line.count("|") == 2
                  and line.split("|")[1].strip().isdigit())
    print("heaviest cumulative imports of `import ctnodule.cli` (us):",
          ", ".join(f"{name} {us}" for us, name in rows[-5:]))
    code = ("import sys, ctnodule.cli; print(sorted(m for m in ('torch', 'pandas', 'scipy', 'sklearn', 'cv2', "
            "'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    print(f"heavy libraries loaded by the CLI at start: {loaded}")


if __name__ == "__main__":
    main()
