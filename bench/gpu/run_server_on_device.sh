#!/usr/bin/env bash
# The GPU run of server_compare.py (`macllm serve` vs llama-server), in one call of the
# device tool (H200):
#   run(command="bash bench/gpu/run_server_on_device.sh", carry=[".gpu"], kind="nvidia-h200")
# .gpu/ (git-ignored) holds what the machine cannot fetch:
#   llama.cpp-trimmed.tar.gz  the sdist's vendor/llama.cpp without models/ docs/ examples/
#                             tests/ benches/ media/, tools/ui's sources and
#                             tools/server's tests (about 8 MB)
#   pypkg/llama_cpp           the sdist's Python package (same version as ours)
#   whl/                      wheels the server needs that the machine's python3 (3.12)
#                             lacks or has older: pydantic (+ core, annotated-types,
#                             typing-inspection, typing_extensions), platformdirs,
#                             diskcache, psutil, keyring (+ jaraco.*, more-itertools),
#                             aiohttp (+ its deps), Jinja2, MarkupSafe
#   smollm2-layout.json       gpu/dump_gguf_layout.py of the default model
# Builds llama.cpp with CUDA (llama-server, llama-quantize, and the shared libraries
# llama-cpp-python loads through LLAMA_CPP_LIB_PATH), rebuilds the default model's
# layout with random weights (speed does not depend on them), quantizes it to Q4_1 and
# compares the servers with all layers on the GPU.
set -euo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
started=$SECONDS
log() { echo "[$((SECONDS - started)) s] $*" | tee -a "$OUT/log"; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/log"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl
src=/tmp/llama.cpp
export PYTHONPATH="/tmp/site:$PWD/.gpu/pypkg:$PWD:$src/gguf-py"
export LLAMA_CPP_LIB_PATH="$src/build/bin"
export PYTHONUNBUFFERED=1
# the server's imports (all but llama.cpp's libraries) before spending minutes on the build
python3 -c "import aiohttp, pydantic, macllm_app.cli.serve, macllm_app.core.server.app; \
print('imports ok: aiohttp', aiohttp.__version__, 'pydantic', pydantic.VERSION)" | tee -a "$OUT/log"
mkdir -p "$src"
tar xzf .gpu/llama.cpp-trimmed.tar.gz -C "$src" --strip-components=1
log "building llama.cpp with CUDA"
cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF >"$OUT/cmake.log" 2>&1
cmake --build "$src/build" -j16 --target llama-server llama-quantize llama >>"$OUT/cmake.log" 2>&1
log "built"


python3 bench/gpu/make_random_gguf.py .gpu/smollm2-layout.json /tmp/f16.gguf >>"$OUT/log"
"$src/build/bin/llama-quantize" /tmp/f16.gguf /tmp/q41.gguf Q4_1 >"$OUT/quantize.log" 2>&1
log "model ready"

log "GPU: all layers on the GPU, ${THREADS:-8} threads"
set +e
# end inside the device tool's 10 minutes, so that what was measured comes back
timeout $((${LIMIT_S:-580} - (SECONDS - started))) \
  python3 bench/server_compare.py --model /tmp/q41.gguf --llama-server "$src/build/bin/llama-server" \
  --macllm-cmd "python3 -m macllm_app.cli" --ngl 99 --threads "${THREADS:-8}" \
  --rounds "${ROUNDS:-5}" --max-tokens "${MAX_TOKENS:-512}" \
  --concurrent-max-tokens "${CONCURRENT_MAX_TOKENS:-512}" --keep-logs "$OUT" \
  --json "$OUT/server_compare.json" ${EXTRA:-} 2>&1 | tee -a "$OUT/log"
status=${PIPESTATUS[0]}
log "done (exit $status)"
exit "$status"
