#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECONDS (default 180) on nightly Rust, keeps what it
# finds in fuzz/corpus/<target>/ (minimised: the fewest inputs covering every feature found) and prints one line of figures per target.
# `make test` replays the corpus on stable (tests/integration/fuzz_corpus.rs), and every input in
# fuzz/regressions/<target>/: copy a failure there from fuzz/artifacts/ with its fix, whole.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-180}
targets=(${FUZZ_TARGETS:-event_lines queue_message api_query metric_sql})
# No sanitizer: the code is safe Rust, so a finding is a panic (or an overflow: debug assertions
# are on), and uninstrumented runs go further in the same time.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  before=$(ls "corpus/$t" | wc -l)
  case $t in event_lines|queue_message) max_len=70000 ;; *) max_len=4096 ;; esac
  log=$(mktemp)
  # rss_limit_mb: a run whose memory passes 1 GiB is a finding too (the parsers must stay bounded).
  cargo +nightly fuzz run "${flags[@]}" "$t" -- -max_total_time="$seconds" -rss_limit_mb=1024 \
    -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  # The smallest set of inputs covering every feature found (set cover, smaller than cmin's).
  merged=$(mktemp -d)
  cargo +nightly fuzz run "${flags[@]}" "$t" "$merged" "corpus/$t" -- -set_cover_merge=1 -max_len="$max_len" \
    >/dev/null 2>&1
  rm -rf "corpus/$t" && mv "$merged" "corpus/$t"
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*')
  rss=$(grep -o 'rss: [0-9]*Mb' "$log" | tail -1 | grep -o '[0-9]*')
  echo "$t: $runs executions in $seconds s, peak ${rss} MiB, no failure; corpus $before -> $(ls "corpus/$t" | wc -l) inputs ($(cat "corpus/$t"/* | wc -c) bytes)"
  rm -f "$log"
done
