#!/usr/bin/env bash
# `make demo`: the README's main job. Needs root. Everything it builds is cached under
# ~/.cache/particle-os, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node_modules/.bin/bun test/demo.ts "$@"
