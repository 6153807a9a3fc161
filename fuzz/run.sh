#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time (default 60 s; `fuzz/run.sh 10` for 10 s).
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). The machine has only a stable toolchain, so
# libFuzzer's coverage flags are enabled with RUSTC_BOOTSTRAP=1 and no sanitizer (the code under test is safe
# Rust; a panic is the failure we look for). A crash is saved under fuzz/artifacts/<target>/ and this
# script fails; turn it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
TARGETS=(redirect_uri scope token_form basic_auth jwt_verify metadata_document)
cargo fuzz build --sanitizer none --release
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "fuzzing $target for ${SECONDS_PER_TARGET}s" >&2
  set +e
  cargo fuzz run --sanitizer none --release "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -rss_limit_mb=1024 \
    -artifact_prefix="artifacts/$target/" -print_final_stats=1 >"artifacts/$target.log" 2>&1
  status=$?
  set -e
  grep -E "^(stat::number_of_executed_units|#[0-9]+.*DONE)" "artifacts/$target.log" >&2 || true
  # A failed run, or a crash input left here (by this run or an earlier one not yet turned into a test).
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "artifacts/$target")" ]; then
    tail -30 "artifacts/$target.log" >&2
    echo "fuzz target $target failed (exit $status); inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzzing done: no crashes" >&2
