#!/usr/bin/env bash
# Edit → save → new score on screen, as a user does it: the explorer runs in tmux on the demo
# workspace, jumps to a latent, edits its explanation, and the time is taken from the Enter that
# saves to the first captured frame that shows the new score ("simulated latent N: r …").
#
#     [LOUPE_WORKSPACE=DIR] Tests/Scripts/bench/resimulate_latency.sh [LATENT] [RUNS]   (default latent 203, 3 runs, the demo workspace)
#
# The edits go to a scratch copy of the workspace (its data linked, its explanation and score logs
# copied), so the demo workspace's own history is left alone. Needs tmux, bc and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
BIN="$ROOT/.build/release/loupe"
DEMO="${LOUPE_WORKSPACE:-$ROOT/data/workspaces/default}"
LATENT="${1:-203}"
RUNS="${2:-3}"
[ -x "$BIN" ] || { echo "build first: swift build -c release" >&2; exit 1; }
[ -f "$DEMO/workspace.json" ] || { echo "no demo workspace at $DEMO: run loupe once" >&2; exit 1; }
WS="$(mktemp -d /tmp/loupe-resim.XXXXXX)"
trap 'tmux kill-session -t loupe-resim 2>/dev/null || true; rm -rf "$WS"' EXIT
for f in "$DEMO"/*; do [ "$(basename "$f")" = explanations ] || ln -s "$f" "$WS/"; done
mkdir "$WS/explanations"
cp "$DEMO/explanations/log.jsonl" "$WS/explanations/"
cap() { tmux capture-pane -p -t loupe-resim; }
for run in $(seq 1 "$RUNS"); do
    tmux kill-session -t loupe-resim 2>/dev/null || true
    tmux new-session -d -s loupe-resim -x 120 -y 40 "TERM=tmux-256color LANG=C.UTF-8 $BIN open $WS --no-explain"
    for _ in $(seq 1 200); do cap | grep -q "Latents" && break; sleep 0.05; done
    sleep 1
    tmux send-keys -t loupe-resim ":"; sleep 0.3
    tmux send-keys -t loupe-resim "$LATENT" Enter; sleep 0.5
    tmux send-keys -t loupe-resim Enter; sleep 1.5
    tmux send-keys -t loupe-resim "e"; sleep 0.3
    tmux send-keys -t loupe-resim C-u
    tmux send-keys -t loupe-resim -l "the word \"and\" joining two clauses, run $run"; sleep 0.3
    start=$(date +%s.%N)
    tmux send-keys -t loupe-resim Enter
    seen=""
    for _ in $(seq 1 1000); do
        if cap | grep -q "simulated latent $LATENT"; then seen=$(date +%s.%N); break; fi
        sleep 0.02
    done
    if [ -n "$seen" ]; then
        echo "run $run: save → new score on screen $(echo "$seen - $start" | bc | sed 's/^\./0./') s"
    else
        echo "run $run: no new score within 20 s"
    fi
    cap | grep -E "^ (simulation|loss Δ)" || true
    tmux send-keys -t loupe-resim Q; sleep 0.5
done
echo "method: explorer in tmux 120×40 on a scratch copy of the demo workspace, latent $LATENT, $(nproc) cores;"
echo "        timed from the Enter that saves the edited explanation to the first frame showing its new score"
