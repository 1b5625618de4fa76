#!/usr/bin/env bash
# The GPU run of llama_bench_compare.py, in one call of the device tool (H100):
#   run(command="bash bench/gpu/run_on_device.sh", carry=[".gpu"], kind="nvidia-h100-x1")
# .gpu/ (ignored, listed in .git/info/exclude) holds what the machine cannot fetch:
#   llama.cpp-trimmed.tar.gz  the sdist's vendor/llama.cpp without models/ docs/ tools/ui
#                             examples/ tests/ benches/ media/ (about 8 MB)
#   pypkg/llama_cpp           the sdist's Python package (same version as ours)
#   whl/                      diskcache, platformdirs, psutil wheels
#   smollm2-layout.json       gpu/dump_gguf_layout.py of the default model
# Builds llama.cpp with CUDA, rebuilds the default model's layout with random
# weights (speed does not depend on them), quantizes it to Q4_1 and compares,
# all layers on the GPU; then, if time is left, the same on the host CPU.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
started=$SECONDS
log() { echo "[$((SECONDS - started)) s] $*" | tee -a "$OUT/log"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/log"
src=/tmp/llama.cpp
mkdir -p "$src"
tar xzf .gpu/llama.cpp-trimmed.tar.gz -C "$src" --strip-components=1
log "building llama.cpp with CUDA"
cmake -S "$src" -B "$src/build" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF >"$OUT/cmake.log" 2>&1
cmake --build "$src/build" -j16 --target llama-bench llama-quantize llama >>"$OUT/cmake.log" 2>&1
log "built"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .gpu/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/.gpu/pypkg:$PWD:$src/gguf-py"
export LLAMA_CPP_LIB_PATH="$src/build/bin"
export PYTHONUNBUFFERED=1

python3 bench/gpu/make_random_gguf.py .gpu/smollm2-layout.json /tmp/f16.gguf >>"$OUT/log"
"$src/build/bin/llama-quantize" /tmp/f16.gguf /tmp/q41.gguf Q4_1 >"$OUT/quantize.log" 2>&1
log "model ready"

compare() {
  python3 bench/llama_bench_compare.py --model /tmp/q41.gguf \
    --llama-bench "$src/build/bin/llama-bench" "$@" 2>&1 | grep -v "^llama\|^load\|^ggml" \
    | tee -a "$OUT/log"
}
if [[ -n "${PROBE:-}" ]]; then  # where a prefill's time goes (prefill_probe.py)
  for ngl in 99 0; do
    python3 bench/gpu/prefill_probe.py /tmp/q41.gguf 8 $ngl "$src/build/bin/llama-bench" 2>&1 \
      | grep -v "^llama\|^load\|^ggml" | tee -a "$OUT/log"
  done
fi
log "GPU: all layers on the GPU, 8 threads"
compare --ngl 99 --threads 8 --rounds "${GPU_ROUNDS:-6}"
if (( SECONDS - started < ${CPU_IF_UNDER_S:-450} )); then
  log "host CPU: 8 threads"
  compare --ngl 0 --threads 8 --rounds "${CPU_ROUNDS:-3}"
fi
log "done"
