#!/usr/bin/env bash
# How the QEMU tier should use the 2 host cores: one guest with 2 vCPUs at a time (the tier until
# issue 12), against two 1-vCPU guests side by side (the tier now). Interleaved rounds, one plain
# boot per guest (test/bench/smp-pair.ts); compare "single" x2 with "pair". Needs `make build`.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUN=node_modules/.bin/bun
rounds=${1:-2}
for round in $(seq 1 "$rounds"); do
  s=$(date +%s.%N)
  PARTICLE_QEMU_SMP=2 $BUN test/bench/smp-pair.ts | tail -1
  echo "round $round: one 2-vCPU guest: $(echo "$(date +%s.%N) - $s" | bc) s"
  s=$(date +%s.%N)
  PARTICLE_QEMU_SMP=1 $BUN test/bench/smp-pair.ts | tail -1 &
  PARTICLE_QEMU_SMP=1 $BUN test/bench/smp-pair.ts | tail -1
  wait
  echo "round $round: two 1-vCPU guests side by side: $(echo "$(date +%s.%N) - $s" | bc) s"
done
