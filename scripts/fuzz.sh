#!/usr/bin/env bash
# Coverage-guided fuzzing of rostersync's parsers with cargo-fuzz / libFuzzer (RELIABILITY.md #19).
#
#   scripts/fuzz.sh short [TARGET...]   ~20 s per target (CI)
#   scripts/fuzz.sh long  [TARGET...]   600 s per target (before a release, or after touching a parser)
#   FUZZ_SECONDS=60 scripts/fuzz.sh short   any other duration per target
#
# Targets (fuzz/fuzz_targets/): config_parse (Settings::from_toml_str, normalise_base_url, validate_cron),
# sis_row_parse (parse_row), canvas_json (the Canvas JSON models and canvas_message), link_header (link::parse).
# With no TARGET, all four run one after the other; the script stops at the first crash and exits non-zero.
#
# Toolchain: cargo-fuzz wants nightly for its -Z flags (sanitizer, coverage passes). This machine has only the
# stable toolchain, so the script sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them. cargo-fuzz itself is
# installed from crates.io (`cargo install cargo-fuzz --locked`) when it is missing.
#
# The first build compiles the whole crate with sanitizer instrumentation (about 7 minutes on 2 cores; later runs
# reuse it). Inputs libFuzzer finds interesting go to fuzz/corpus/TARGET (git-ignored, kept between runs); the
# committed seeds in fuzz/seeds/TARGET are read only. A crash is saved under fuzz/artifacts/TARGET/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…
# then minimise it (`cargo fuzz tmin`) and add it as a proptest or unit test case once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-short}"
shift || true
case "$mode" in
  short) seconds="${FUZZ_SECONDS:-20}" ;;
  long) seconds="${FUZZ_SECONDS:-600}" ;;
  *)
    echo "usage: scripts/fuzz.sh short|long [TARGET...]" >&2
    exit 2
    ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config_parse sis_row_parse canvas_json link_header)
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "fuzz: building the fuzz targets"
cargo fuzz build --fuzz-dir fuzz
mkdir -p fuzz/artifacts
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  seeds=()
  if [ -d "fuzz/seeds/$target" ]; then
    seeds=("fuzz/seeds/$target")
  fi
  log="fuzz/artifacts/$target.log"
  echo "fuzz: $target for ${seconds} s (full log: $log)"
  # A crash, a leak, an out-of-memory or a 10 s input ends the run with a non-zero status.
  set +e
  cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1
  status=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target FAILED (exit $status); the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: no crash in ${targets[*]}"
