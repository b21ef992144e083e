#!/usr/bin/env bash
# make fuzz [FUZZ_SECONDS=N]: libFuzzer (clang) on the safetensors header parser, with ASan+UBSan.
# Seeds: every defect of tests/gen-malformed.py, small valid files, and the headers of ../shared's
# models. Crashes land in build/fuzz/ (crash-*); the corpus grows in build/fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${FUZZ_SECONDS:-300}}
OUT=build/fuzz
mkdir -p "$OUT/corpus" "$OUT/seeds"
bash tools/deps.sh clang libclang-rt-14-dev   # installs them as root, else prints the apt-get line
clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Ilibcommon tests/fuzz/st_header_fuzz.c libcommon/st_header.c libcommon/dtype.c libcommon/err.c \
  -lcjson -o "$OUT/st_header_fuzz"
python3 tests/gen-malformed.py "$OUT/seeds" > /dev/null
rm -f "$OUT/seeds/manifest.tsv"
for m in ../shared/models/*/model.safetensors; do   # header + first bytes of real models
  [ -f "$m" ] && head -c 20000 "$m" > "$OUT/seeds/$(basename "$(dirname "$m")").head"
done
python3 - "$OUT/seeds" <<'PY'
import json, struct, sys
def w(p, h, d):
    b = json.dumps(h).encode(); b += b' ' * ((8 - (8 + len(b)) % 8) % 8)
    open(p, 'wb').write(struct.pack('<Q', len(b)) + b + d)
w(sys.argv[1] + '/valid1', {"__metadata__": {"format": "pt"}, "a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]},
  "b": {"dtype": "I64", "shape": [], "data_offsets": [12, 20]}}, bytes(20))
w(sys.argv[1] + '/valid2', {"x": {"dtype": "BOOL", "shape": [0], "data_offsets": [0, 0]}}, b'')
PY
echo "fuzz: running $SECS s" >&2
set +e
"$OUT/st_header_fuzz" "$OUT/corpus" "$OUT/seeds" -max_total_time="$SECS" -max_len=65536 \
  -artifact_prefix="$OUT/" -print_final_stats=1 > "$OUT/log.txt" 2>&1
rc=$?
set -e
grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$OUT/log.txt" || true
crashes=$( (ls "$OUT"/crash-* "$OUT"/leak-* "$OUT"/timeout-* 2>/dev/null || true) | wc -l)
echo "fuzz: $SECS s, corpus $(ls "$OUT/corpus" | wc -l) inputs, $crashes crashes (exit $rc)"
[ "$crashes" -eq 0 ]
