"""Does `ctnodule.runtime.tune_malloc()` speed up training? A short fine-tuning loop with and without it.

mallopt settings are process-wide and cannot be undone, so each variant runs in its own subprocess:
`none` (glibc defaults), `tuned` (tune_malloc's values) and alternatives set through glibc's environment
variables. Prints seconds per step (median of the timed steps, then of interleaved rounds) and the ratio to `none`.
On a machine shared with other jobs the spread between rounds is large: read the ratio only when the
load average is near the core count.

    python bench/bench_malloc.py [--steps 12] [--size 64] [--batch 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

VARIANTS = {
    "none": {},
    "tuned": {"TUNE": "1"},
    "mmap64M": {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
                "MALLOC_TOP_PAD_": str(16 << 20)},
    "mmap1G": {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(2 << 30),
               "MALLOC_TOP_PAD_": str(256 << 20)},
}

CHILD = r"""
import json, os, statistics, sys, time, warnings
import torch
if os.environ.get("TUNE"):
    from ctnodule.runtime import tune_malloc
    tune_malloc()
warnings.simplefilter("ignore")
from ctnodule.models.backbones import create_backbone
from ctnodule.models.heads import create_head
from ctnodule.models.network import Classifier
steps, size, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
b = create_backbone("efficientnet_lite0", "auto")
net = Classifier(b, create_head("mlp", b.num_features, 2, 1))
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x, e, y = torch.rand(batch, 3, size, size), torch.rand(batch, 1), torch.randint(0, 2, (batch,))
times = []
for i in range(steps + 2):
    t = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(net(x, e), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(json.dumps({"median_s": statistics.median(times[2:])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):  # interleaved rounds: a burst of load from elsewhere hits every variant
        for name, extra in VARIANTS.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.steps), str(args.size), str(args.batch)],
                                 env={**base_env, **extra}, capture_output=True, text=True, check=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1])["median_s"])
    results = {name: statistics.median(v) for name, v in runs.items()}
    ref = results["none"]
    print(f"fine-tuning step, efficientnet_lite0, batch {args.batch} x {args.size}px, {os.cpu_count()} CPUs, "
          f"median over {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.1f}")
    for name, sec in results.items():
        print(f"  {name:8s} {sec * 1000:8.1f} ms/step   speed-up vs none x{ref / sec:.2f}")


if __name__ == "__main__":
    main()
