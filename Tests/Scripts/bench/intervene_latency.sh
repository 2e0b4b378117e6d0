#!/usr/bin/env bash
# Interventions as a user meets them, on the demo workspace:
#  1. the command line: `loupe steer --json` (first_token_ms: request → first generated token of
#     both runs) and `loupe ablate --json` (seconds: base + ablated run and the per-token statistics
#     over a 64-token text), each after the model is loaded and the text analysed, as in the lab,
#     and each as a ratio to one plain forward pass timed in the same process (the machine may be
#     shared: the ratio holds where the seconds do not);
#  2. the explorer in tmux: the lab's text analysed, the latent chosen with `:`, then `S` → the first
#     frame showing the steered column, and `a` → the first frame showing the ablation's list.
#
#     [LOUPE_WORKSPACE=DIR] Tests/Scripts/bench/intervene_latency.sh [LATENT] [RUNS]   (default latent 1391, 3 runs)
#
# The explorer runs on a scratch copy of the workspace (its data linked, its explanations copied),
# so the demo workspace is left alone. Needs tmux, bc, python3 and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
BIN="$ROOT/.build/release/loupe"
DEMO="${LOUPE_WORKSPACE:-$ROOT/data/workspaces/default}"
LATENT="${1:-1391}"
RUNS="${2:-3}"
PROMPT="My favourite place to spend a holiday is"
# 64 tokens of SmolLM2's tokenizer.
TEXT="The ship left the harbour at dawn and sailed out across the open sea. For three weeks the sailors saw nothing but the ocean, grey waves under a grey sky, until at last the coast of a new land rose from the water. The captain ordered the boats lowered, and the crew rowed ashore through the surf to"
[ -x "$BIN" ] || { echo "build first: swift build -c release" >&2; exit 1; }
[ -f "$DEMO/workspace.json" ] || { echo "no demo workspace at $DEMO: run loupe once" >&2; exit 1; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
echo "tokens in the ablation text: $("$BIN" tokenize --json "$TEXT" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["ids"]))')"
for run in $(seq 1 "$RUNS"); do
    steer=$("$BIN" steer --latent "$LATENT" --scale 10 --tokens 8 --workspace "$DEMO" --json "$PROMPT" 2>/dev/null)
    ablate=$("$BIN" ablate --latent "$LATENT" --workspace "$DEMO" --json "$TEXT" 2>/dev/null)
    first=$(echo "$steer" | field first_token_ms); prefill=$(echo "$steer" | field prompt_forward_ms)
    seconds=$(echo "$ablate" | field seconds); forward=$(echo "$ablate" | field forward_seconds)
    printf 'cli run %d: steer → first tokens %.0f ms (%.2f× one forward of the prompt, %.0f ms) · ablation over 64 tokens %.3f s (%.2f× one forward of the text, %.3f s)\n' \
        "$run" "$first" "$(echo "$first / $prefill" | bc -l)" "$prefill" "$seconds" "$(echo "$seconds / $forward" | bc -l)" "$forward"
done

WS="$(mktemp -d /tmp/loupe-intervene.XXXXXX)"
trap 'tmux kill-session -t loupe-iv 2>/dev/null || true; rm -rf "$WS"' EXIT
for f in "$DEMO"/*; do [ "$(basename "$f")" = explanations ] || ln -s "$f" "$WS/"; done
mkdir "$WS/explanations"
cp "$DEMO/explanations/log.jsonl" "$WS/explanations/"
cap() { tmux capture-pane -p -t loupe-iv; }
# Time from now until the pane shows $1 (at most 30 s).
until_shown() {
    local start seen=""
    start=$(date +%s.%N)
    for _ in $(seq 1 1500); do
        if cap | grep -q "$1"; then seen=$(date +%s.%N); break; fi
        sleep 0.02
    done
    if [ -n "$seen" ]; then echo "$seen - $start" | bc | sed 's/^\./0./'; else echo "none within 30"; fi
}
for run in $(seq 1 "$RUNS"); do
    tmux kill-session -t loupe-iv 2>/dev/null || true
    tmux new-session -d -s loupe-iv -x 120 -y 40 "TERM=tmux-256color LANG=C.UTF-8 $BIN open $WS --no-explain"
    for _ in $(seq 1 200); do cap | grep -q "Latents" && break; sleep 0.05; done
    sleep 1
    tmux send-keys -t loupe-iv "3"; sleep 0.3
    tmux send-keys -t loupe-iv "e"; sleep 0.2
    tmux send-keys -t loupe-iv C-u; tmux send-keys -t loupe-iv C-k
    tmux send-keys -t loupe-iv -l "$PROMPT"
    tmux send-keys -t loupe-iv Enter
    # Enter runs the text and leaves the editor.
    for _ in $(seq 1 1500); do cap | grep -q " tokens · heat" && break; sleep 0.02; done
    tmux send-keys -t loupe-iv ":"; sleep 0.2
    tmux send-keys -t loupe-iv "$LATENT" Enter; sleep 0.3
    tmux send-keys -t loupe-iv "+" "+" "+" "+" "+"; sleep 0.3
    tmux send-keys -t loupe-iv "S"
    steer=$(until_shown "steered: latent $LATENT")
    for _ in $(seq 1 1500); do cap | grep -q "done · first tokens" && break; sleep 0.02; done
    [ "$run" = 1 ] && cap > "${LOUPE_CAPTURE_DIR:-/tmp}/intervene-lab-steer.txt"
    tmux send-keys -t loupe-iv "e"; sleep 0.2
    tmux send-keys -t loupe-iv C-u; tmux send-keys -t loupe-iv C-k
    tmux send-keys -t loupe-iv -l "$TEXT"
    tmux send-keys -t loupe-iv Enter
    for _ in $(seq 1 1500); do cap | grep -q "64 tokens" && break; sleep 0.02; done
    tmux send-keys -t loupe-iv ":"; sleep 0.2
    tmux send-keys -t loupe-iv "$LATENT" Enter; sleep 0.3
    tmux send-keys -t loupe-iv "a"
    ablate=$(until_shown "helps most")
    [ "$run" = 1 ] && cap > "${LOUPE_CAPTURE_DIR:-/tmp}/intervene-lab-ablate.txt"
    echo "lab run $run: S → steered column on screen $steer s · a → ablation heatmap on screen $ablate s"
    tmux send-keys -t loupe-iv Q; sleep 0.5
done
echo "method: $(nproc) cores ($(grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo || echo portable)), latent $LATENT; cli figures from --json after the"
echo "        model is loaded and the text analysed; lab figures from the key to the first tmux frame (120×40) showing the result,"
echo "        the steering at 10× max ('+' five times from 5), the ablation on the 64-token text; first run's frames in \${LOUPE_CAPTURE_DIR:-/tmp}"
