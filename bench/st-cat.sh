#!/usr/bin/env bash
# st-cat throughput on a >= 1 GB bf16 file (warm page cache), next to cat of the same file:
#   pass-through (file -> stream -> pipe), pass-through from a pipe (stream mode), bf16 -> f32,
#   and peak RSS (memory must stay near the largest tensor, 32 MiB here, not the file size).
# Target: pass-through >= 0.8x cat.  Usage: bench/st-cat.sh [SIZE_MB] (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-1024}
OUT=bench/out; mkdir -p "$OUT"
F=$OUT/st-cat-${MB}M.safetensors
[ -x bin/st-cat ] || make -s all
if [ ! -f "$F" ]; then   # N tensors of 32 MiB (bf16 [4096, 4096]) of random bits
  python3 - "$F" "$MB" <<'PY'
import json, os, struct, sys
path, mb = sys.argv[1], int(sys.argv[2])
n = max(1, mb // 32); size = 4096 * 4096 * 2
h = {"__metadata__": {"format": "pt"}}
for i in range(n):
    h["model.layers.%d.mlp.up_proj.weight" % i] = {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [i * size, (i + 1) * size]}
b = json.dumps(h).encode(); b += b' ' * ((8 - (8 + len(b)) % 8) % 8)
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(b)) + b)
    chunk = os.urandom(size)
    for i in range(n):   # distinct bytes per tensor, cheaply: rotate the random chunk
        f.write(chunk[i * 4096:] + chunk[:i * 4096])
PY
fi
BYTES=$(stat -c %s "$F")
cat "$F" > /dev/null   # warm the page cache
best() {   # best wall time of 3 runs of a shell command
  local b=999999 t
  for _ in 1 2 3; do
    t=$( { /usr/bin/time -f "%e" bash -c "$1" > /dev/null; } 2>&1 | tail -1)
    b=$(python3 -c "print(min($b, $t))")
  done
  echo "$b"
}
rss() { { /usr/bin/time -f "%M" bash -c "$1" > /dev/null; } 2>&1 | tail -1; }   # max RSS of the slowest process, KiB
mbps() { python3 -c "print('%.0f' % ($BYTES / 1e6 / max($1, 1e-9)))"; }
t_cat=$(best "cat '$F' | cat > /dev/null")
t_st=$(best "bin/st-cat '$F' | cat > /dev/null")
t_pipe=$(best "cat '$F' | bin/st-cat | cat > /dev/null")
t_cat3=$(best "cat '$F' | cat | cat > /dev/null")
t_cvt=$(best "bin/st-cat --dtype f32 '$F' | cat > /dev/null")
t_cvt_dev=$(best "bin/st-cat --dtype f32 '$F' -o /dev/null")
r_file=$( { /usr/bin/time -f "%M" bin/st-cat "$F" -o /dev/null; } 2>&1 | tail -1)
r_pipe=$( { cat "$F" | /usr/bin/time -f "%M" bin/st-cat -o /dev/null; } 2>&1 | tail -1)
r_cvt=$( { /usr/bin/time -f "%M" bin/st-cat --dtype f32 "$F" -o /dev/null; } 2>&1 | tail -1)
echo "st-cat bench: $(python3 -c "print('%.2f' % ($BYTES / 1e9))") GB bf16 file, 32 MiB tensors, warm cache"
printf "  %-44s %6.2f s  %6s MB/s\n" "cat F | cat" "$t_cat" "$(mbps "$t_cat")"
printf "  %-44s %6.2f s  %6s MB/s  %.2fx cat\n" "st-cat F | cat (pass-through, mmap)" "$t_st" "$(mbps "$t_st")" "$(python3 -c "print($t_cat / $t_st)")"
printf "  %-44s %6.2f s  %6s MB/s\n" "cat F | cat | cat" "$t_cat3" "$(mbps "$t_cat3")"
printf "  %-44s %6.2f s  %6s MB/s  %.2fx cat|cat|cat\n" "cat F | st-cat | cat (stream mode)" "$t_pipe" "$(mbps "$t_pipe")" "$(python3 -c "print($t_cat3 / $t_pipe)")"
printf "  %-44s %6.2f s  %6s MB/s in\n" "st-cat --dtype f32 F | cat (bf16->f32)" "$t_cvt" "$(mbps "$t_cvt")"
printf "  %-44s %6.2f s  %6s MB/s in\n" "st-cat --dtype f32 F -o /dev/null" "$t_cvt_dev" "$(mbps "$t_cvt_dev")"
echo "  peak RSS: pass-through file $((r_file / 1024)) MB, stream $((r_pipe / 1024)) MB, bf16->f32 $((r_cvt / 1024)) MB (largest tensor 32 MiB)"
echo "{\"bench\":\"st-cat\",\"bytes\":$BYTES,\"cat_s\":$t_cat,\"passthrough_s\":$t_st,\"passthrough_vs_cat\":$(python3 -c "print(round($t_cat / $t_st, 3))"),\"stream_s\":$t_pipe,\"cat3_s\":$t_cat3,\"bf16_to_f32_s\":$t_cvt,\"rss_passthrough_kb\":$r_file,\"rss_stream_kb\":$r_pipe,\"rss_convert_kb\":$r_cvt}"
