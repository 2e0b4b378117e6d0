#!/usr/bin/env python3
"""Per simulator and explainer: mean / median Pearson r of the own explanation and of its controls,
read from a workspace's score store (explanations/scores.jsonl, written by `loupe score`).

For each latent the newest score per (simulator mode, calibration, explanation source) counts.
With --common, only latents scored by every simulator mode present are kept (per explanation
source, among the modes that scored it), so the modes are compared on the same latents. Under
each row: how often r >= 0.1 and the own explanation beats the lexical match, and the mean
detection rates (sensitivity, specificity, balanced accuracy per window) of the scores made by
the newest simulator of that mode (a trained simulator's name ends in its head file's tag; a
retrained head or new detection thresholds make a new tag, and Pearson r is the same under
either).

    python3 Tests/Scripts/eval/score_summary.py [WORKSPACE] [--common] [--calibration none]

WORKSPACE defaults to data/workspaces/default.
"""
import argparse
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workspace", nargs="?", default=os.path.join(ROOT, "data/workspaces/default"))
    p.add_argument("--common", action="store_true", help="only latents scored by every simulator mode")
    p.add_argument("--calibration", default="none")
    a = p.parse_args()
    latest = {}
    newest_backend = {}
    with open(os.path.join(a.workspace, "explanations/scores.jsonl")) as f:
        for line in f:
            try:
                s = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if s.get("calibration") != a.calibration or s.get("pearson") is None:
                continue
            latest[(s["mode"], s["source"], s["latent"])] = s
            newest_backend[s["mode"]] = s["backend"]
    modes = sorted({k[0] for k in latest})
    if a.common:  # per explanation source: the latents every mode that scored that source scored
        by_source = {}
        for mode, source, latent in latest:
            by_source.setdefault(source, {}).setdefault(mode, set()).add(latent)
        shared = {source: set.intersection(*per_mode.values()) for source, per_mode in by_source.items()}
        latest = {k: v for k, v in latest.items() if k[2] in shared[k[1]]}
    print(f"calibration {a.calibration}; Pearson r over latents, mean / median"
          + ("; only latents scored by every mode" if a.common else ""))
    print(f"{'simulator':14} {'source':8} {'latents':>7}  {'own':>15} {'shuffled':>15} {'token prior':>15} "
          f"{'lexical match':>15} {'own - shuffled':>15}")
    for mode in modes:
        for source in sorted({k[1] for k in latest if k[0] == mode}):
            rows = [v for k, v in latest.items() if k[0] == mode and k[1] == source]
            with_controls = [v for v in rows if v.get("controls") and all(
                v["controls"].get(c) is not None for c in ("shuffled", "token_prior", "lexical_match"))]

            def mm(xs):
                return f"{statistics.mean(xs):+.3f} / {statistics.median(xs):+.3f}" if xs else "–"
            own = [v["pearson"] for v in with_controls]
            print(f"{mode:14} {source:8} {len(with_controls):7d}  {mm(own):>15} "
                  f"{mm([v['controls']['shuffled'] for v in with_controls]):>15} "
                  f"{mm([v['controls']['token_prior'] for v in with_controls]):>15} "
                  f"{mm([v['controls']['lexical_match'] for v in with_controls]):>15} "
                  f"{mm([v['pearson'] - v['controls']['shuffled'] for v in with_controls]):>15}")
            above = sum(1 for x in own if x >= 0.1)
            if own:
                print(f"{'':14} {'':8} {'':7}  r >= 0.1 on {above} of {len(own)}; own beats lexical match on "
                      f"{sum(1 for v in with_controls if v['pearson'] > v['controls']['lexical_match'])}")
            newest = [v for v in rows if v["backend"] == newest_backend[mode]]

            def mean(key):
                xs = [v[key] for v in newest if v.get(key) is not None]
                return f"{statistics.mean(xs):.3f} ({len(xs)})" if xs else "–"
            if newest:
                print(f"{'':14} {'':8} {'':7}  detection by {newest_backend[mode]}: sensitivity {mean('sensitivity')}, "
                      f"specificity {mean('specificity')}, balanced accuracy {mean('balanced_accuracy')}")


if __name__ == "__main__":
    sys.exit(main())
