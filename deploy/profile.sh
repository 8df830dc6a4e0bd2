#!/usr/bin/env bash
# Profiles genie under the hot-path benchmark: runs ./deploy/bench.sh and, 3 s into the named
# phase, samples the genie process with perf (cpu-clock, DWARF call graphs) for 5 s.
#   ./deploy/profile.sh ["GET /users/me"] [out-dir]
# then e.g.: perf report -i OUT/genie.data --children --sort sym --no-call-graph
# The sampling itself slows that phase: read the benchmark's table from a run without it.
set -euo pipefail
cd "$(dirname "$0")/.."
phase=${1:-GET /users/me}
out=${2:-target/profile}
command -v perf >/dev/null || { echo "perf is not on PATH (Debian: linux-perf)" >&2; exit 1; }
mkdir -p "$out"
./deploy/bench.sh > "$out/bench.txt" 2>&1 &
bench=$!
until grep -qF "$phase: 32 connections" "$out/bench.txt"; do
  kill -0 "$bench" 2>/dev/null || { cat "$out/bench.txt"; exit 1; }
  sleep 0.2
done
sleep 3
pid=$(pgrep -f 'release/genie up' | head -1)
perf record -e cpu-clock -F 999 --call-graph dwarf,8192 -p "$pid" -o "$out/genie.data" -- sleep 5
wait "$bench"
echo "profile: $out/genie.data; benchmark output: $out/bench.txt"
