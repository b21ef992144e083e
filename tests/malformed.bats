#!/usr/bin/env bats
# Malformed safetensors (tests/gen-malformed.py writes one file per defect): every one must give
# exit 1 and exactly one clear line naming the defect, as a file (mmap), as a pipe (stream), and
# under ASan+UBSan; plus broken zstd inputs and broken sharded folders.
load helpers

setup_file() {
  export MAL="$BATS_FILE_TMPDIR/mal"
  python3 "$BATS_TEST_DIRNAME/gen-malformed.py" "$MAL" > "$BATS_FILE_TMPDIR/count"
}
setup() { T=$(scratch); }
teardown() { rm -rf "$T"; }

# one_line_error BIN ARGS... : exit 1, one line, "st-cat: ..."
one_line_error() {
  run "$@"
  [ "$status" -eq 1 ] || { echo "exit $status (want 1): $*"; echo "$output"; return 1; }
  [ "${#lines[@]}" -eq 1 ] || { echo "want one line: $*"; echo "$output"; return 1; }
  [[ "${lines[0]}" == st-cat:* ]] || { echo "not an st-cat message: $output"; return 1; }
}

@test "the generator writes at least 15 distinct defects" {
  [ "$(cat "$BATS_FILE_TMPDIR/count")" -ge 15 ]
  [ "$(cut -f1 "$MAL/manifest.tsv" | sort -u | wc -l)" -ge 15 ]
}

@test "each malformed file: exit 1, one line naming the defect (file input, -l)" {
  while IFS=$'\t' read -r f word; do
    one_line_error st-cat -l "$MAL/$f"
    [[ "$output" == *"$f"* ]] || { echo "message does not name the file: $output"; return 1; }
    [[ "$output" == *"$word"* ]] || { echo "$f: message lacks '$word': $output"; return 1; }
  done < "$MAL/manifest.tsv"
}

@test "each malformed file: exit 1, one line, when streamed through a pipe" {
  while IFS=$'\t' read -r f word; do
    run bash -c "cat '$MAL/$f' | st-cat -o '$T/out.safetensors'"
    [ "$status" -eq 1 ] && [ "${#lines[@]}" -eq 1 ] && [[ "$output" == "st-cat: stdin: "* ]] ||
      { echo "$f: status $status: $output"; return 1; }
  done < "$MAL/manifest.tsv"
  # nothing was left behind: no output, no temporaries
  [ -z "$(ls -A "$T")" ]
}

@test "each malformed file under ASan+UBSan: exit 1, no sanitizer report" {
  need_san st-cat
  while IFS=$'\t' read -r f word; do
    one_line_error "$SANBIN/st-cat" --summary "$MAL/$f"
    run bash -c "'$SANBIN/st-cat' < '$MAL/$f' > /dev/null"
    [ "$status" -eq 1 ] || { echo "$f (stream): status $status: $output"; return 1; }
  done < "$MAL/manifest.tsv"
}

@test "broken zstd: truncated frame, garbage after the magic number" {
  need_shared
  st-cat --zstd "$MODELS/stories260K" > "$T/m.zst"
  head -c 5000 "$T/m.zst" > "$T/trunc.safetensors.zst"
  one_line_error st-cat "$T/trunc.safetensors.zst" -o "$T/x.safetensors"
  printf '\x28\xb5\x2f\xfdgarbage-garbage-garbage' > "$T/bad.zst"
  one_line_error st-cat -l "$T/bad.zst"
  [[ "$output" == *zstd* ]]
  run bash -c "head -c 5000 '$T/m.zst' | st-cat > /dev/null"
  assert_failure 1
  [ ! -e "$T/x.safetensors" ]
}

@test "broken sharded folders: missing shard, tensor not in the index, bad index" {
  need_shared
  st-cat --max-shard-size 200K "$MODELS/stories260K" -o "$T/m"
  cp -r "$T/m" "$T/a"; rm "$T/a/model-00002-of-"*.safetensors
  one_line_error st-cat -l "$T/a"
  cp -r "$T/m" "$T/b"
  python3 - "$T/b/model.safetensors.index.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j['weight_map'].pop('model.norm.weight')
json.dump(j, open(sys.argv[1], 'w'))
PY
  one_line_error st-cat -l "$T/b"
  [[ "$output" == *"not in the index"* ]]
  cp -r "$T/m" "$T/c"; echo '{"weight_map": 3}' > "$T/c/model.safetensors.index.json"
  one_line_error st-cat -l "$T/c"
  cp -r "$T/m" "$T/d"; echo '{"weight_map": {"x": "../../etc/passwd"}}' > "$T/d/model.safetensors.index.json"
  one_line_error st-cat -l "$T/d"
  mkdir "$T/e"
  one_line_error st-cat -l "$T/e"
  [[ "$output" == *"no model.safetensors"* ]]
}

@test "a model of zero tensors and zero-size tensors are valid" {
  python3 - "$T" <<'PY'
import json, struct, sys
def w(p, h, d):
    b = json.dumps(h).encode(); b += b' ' * ((8 - (8 + len(b)) % 8) % 8)
    open(p, 'wb').write(struct.pack('<Q', len(b)) + b + d)
w(sys.argv[1] + '/empty.safetensors', {}, b'')
w(sys.argv[1] + '/zero.safetensors', {"a": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},
                                      "b": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, bytes(8))
PY
  run st-cat --summary "$T/empty.safetensors"
  assert_success
  assert_output --partial '"tensors":0,'
  st-cat "$T/zero.safetensors" | st-cat -o "$T/back.safetensors"
  run st-cat -l "$T/back.safetensors"
  assert_line --index 0 --partial '"shape":[0,4]'
  st-cat "$T/empty.safetensors" -o "$T/emptydir"
  [ -f "$T/emptydir/model.safetensors" ]
}
