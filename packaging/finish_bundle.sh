#!/usr/bin/env bash
# After PyInstaller: the Linux bundle gets its `macllm` command link and its desktop
# files; either platform's bundle has its size printed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)" = "Darwin" ]; then
    bundle=dist/MacLLM.app
else
    bundle=dist/MacLLM
    ln -sf MacLLM "$bundle/macllm"
    mkdir -p "$bundle/share"
    cp packaging/linux/macllm.desktop packaging/linux/macllm-gguf.xml "$bundle/share/"
    cp build/icons/macllm-256.png "$bundle/share/macllm.png"
    cp packaging/linux/install-desktop.sh "$bundle/"
fi
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1))"
