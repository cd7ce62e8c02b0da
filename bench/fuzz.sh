#!/usr/bin/env bash
# The long run of the suites that `cargo test --workspace` runs short:
#   - the property tests of every parser of untrusted input (modules named
#     `proptests`: routes, targets, names, globs, cron, trigger bodies, the
#     manifest, bucket names and object keys, ListObjectsV2 tokens and pages,
#     the deploy form, request ids, event documents, CloudEvents headers and
#     S3 notification keys, the SDK's event reading), FUZZ_CASES cases each
#     (default 100000; the test run does proptest's default 256);
#   - Range headers on GetObject through the real S3 endpoint, RANGE_CASES
#     ranges (default 5000; the test run sends 200);
#   - schemathesis against the admin API, SCHEMATHESIS_EXAMPLES examples per
#     operation (default 200; the test run does 10), with a random seed
#     (printed, so a failure reproduces with KUMO_SCHEMATHESIS_SEED).
# A failing property is shrunk to a small input, printed, and saved in the
# crate's proptest-regressions/ folder: commit that file with the fix, and
# every later run tries that input first.
#
# cargo fuzz (libFuzzer), checked with cargo-fuzz 0.13.2 on the pinned 1.95
# stable toolchain: `cargo fuzz build` fails ("the option `Z` is only
# accepted on the nightly compiler": it asks for -Zsanitizer=address);
# `cargo fuzz build --sanitizer none` builds, with coverage guidance but no
# sanitizer, which in a crate that forbids `unsafe` adds little to a panic
# check. No nightly is added for it: proptest covers the same parsers, with
# shrinking, on the stable toolchain. Coverage-guided targets in `--sanitizer
# none` mode would be the next step if these properties stop finding things.
#
#   bench/fuzz.sh                      # about 10-20 minutes on 2 cores
#   FUZZ_CASES=1000000 bench/fuzz.sh   # longer
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_CASES="${FUZZ_CASES:-100000}"
RANGE_CASES="${RANGE_CASES:-5000}"
SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-200}"
SEED="${KUMO_SCHEMATHESIS_SEED:-$RANDOM$RANDOM}"

echo "fuzz: property tests, $FUZZ_CASES cases each" >&2
time PROPTEST_CASES="$FUZZ_CASES" cargo test --workspace --lib proptests

echo "fuzz: $RANGE_CASES Range headers through the S3 endpoint" >&2
time PROPTEST_CASES="$RANGE_CASES" cargo test -p kumo --test integration range_headers -- --nocapture

echo "fuzz: schemathesis, $SCHEMATHESIS_EXAMPLES examples per operation, seed $SEED" >&2
time KUMO_SCHEMATHESIS_EXAMPLES="$SCHEMATHESIS_EXAMPLES" KUMO_SCHEMATHESIS_SEED="$SEED" \
  cargo test -p kumo --test integration schemathesis -- --nocapture
