#!/usr/bin/env bash
# Register a built MacLLM bundle with the desktop: its launcher, icon and the .gguf
# file type, for the current user. Run from the bundle's folder: ./install-desktop.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/applications" "$data/mime/packages" "$data/icons/hicolor/256x256/apps"
sed "s|^Exec=MacLLM|Exec=$here/MacLLM|" "$here/share/macllm.desktop" \
    > "$data/applications/macllm.desktop"
cp "$here/share/macllm-gguf.xml" "$data/mime/packages/macllm-gguf.xml"
cp "$here/share/macllm.png" "$data/icons/hicolor/256x256/apps/macllm.png"
command -v update-mime-database >/dev/null && update-mime-database "$data/mime" || true
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
echo "MacLLM is in your applications menu, and opens .gguf files."
