#!/bin/sh
# Drain benchmark: krun against `kubectl drain` 1.33 on copies of the same simulated cluster
# (a 200-pod node without PDBs, and a 50-pod node whose pods are PDB-limited).
# Prints wall time and the API requests the simulator counted. BENCH_RUNS sets the runs per
# scenario (default 3). Needs kubectl.1.33 beside the kubectl on PATH.
#
# The simulator runs in the test binary, so krun's own crate is built with optimisation
# (opt-level 2, only this crate is rebuilt): unoptimised, the simulator is the bottleneck and
# both tools measure its speed rather than their own.
set -eu
cd "$(dirname "$0")/.."
export CARGO_PROFILE_DEV_OPT_LEVEL="${CARGO_PROFILE_DEV_OPT_LEVEL:-2}"
exec cargo test --test integration kube::bench::drain_benchmark -- --ignored --nocapture --test-threads=1 "$@"
