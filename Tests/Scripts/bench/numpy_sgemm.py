#!/usr/bin/env python3
"""numpy's sgemm (OpenBLAS on these machines) on given shapes: the yardstick of `loupe bench kernels`.

Loupe runs this script between its own rounds, so both are measured alternately in one run on
the same shapes and threads. For each shape m,n,k it times y = x·Wᵀ with x[m×k], W[n×k] in fp32
(the layout of Loupe's Gemm.matmul), repeated to last at least 20 ms, and reports the median of
`--runs` such timings as GFLOP/s (2·m·n·k per product). Prints one JSON object.

    python3 Tests/Scripts/bench/numpy_sgemm.py --threads 2 --runs 7 --shapes 256,1536,576 256,576,1536

The thread count must be set before numpy loads OpenBLAS, so it goes through the environment.
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are left as the machine has them (the script reports them).
"""
import argparse
import json
import os
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--shapes", nargs="+", required=True, help="m,n,k triples")
    a = p.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import numpy as np

    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg.get("Build Dependencies", {}).get("blas", {})
        blas = f"{b.get('name', '?')} {b.get('version', '?')} ({b.get('openblas configuration', '').strip()})"
    except Exception:
        pass
    coretype = None
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("internal_api") == "openblas":
                coretype = info.get("architecture")
    except Exception:
        pass

    rng = np.random.default_rng(0)
    results = []
    for spec in a.shapes:
        m, n, k = (int(v) for v in spec.split(","))
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = rng.standard_normal((n, k), dtype=np.float32)
        wt = w.T  # a view: sgemm reads W transposed in place, as Loupe reads its packed W
        y = np.empty((m, n), dtype=np.float32)
        np.matmul(x, wt, out=y)  # warm-up
        reps = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(x, wt, out=y)
            if time.perf_counter() - t0 >= 0.02:
                break
            reps *= 2
        times = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            for _ in range(reps):
                np.matmul(x, wt, out=y)
            times.append((time.perf_counter() - t0) / reps)
        times.sort()
        med = times[len(times) // 2]
        results.append({"m": m, "n": n, "k": k, "median_s": med, "gflops": 2 * m * n * k / med / 1e9})
    print(json.dumps({"numpy": np.__version__, "blas": blas, "openblas_coretype": coretype,
                      "env_coretype": os.environ.get("OPENBLAS_CORETYPE"), "threads": a.threads,
                      "runs": a.runs, "shapes": results}))


if __name__ == "__main__":
    sys.exit(main())
