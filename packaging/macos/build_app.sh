#!/usr/bin/env bash
# Build, sign, package and check MacLLM.app on a Mac (Apple Silicon), by hand or in CI:
#
#   bash packaging/macos/build_app.sh            # from the repository's root
#
# 1. `make bundle` builds dist/MacLLM.app (PyInstaller, with the icon and the GGUF
#    document type from resources/).
# 2. Signs it: with a Developer ID when MACOS_SIGN_IDENTITY is set (hardened runtime),
#    otherwise ad hoc ("-"), which is enough to run it on this Mac.
# 3. Runs the bundle's self-test and a CLI chat from inside MacLLM.app.
# 4. Builds dist/MacLLM-<version>.dmg with hdiutil.
# 5. Notarizes and staples the .dmg when APPLE_ID, APPLE_TEAM_ID and
#    APPLE_APP_PASSWORD are set (notarytool submit --wait, stapler staple).
#
# MACLLM_SMOKE_ENGINES=cpu runs the checks with no GPU layers (CI runners have no
# usable Metal device).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = "Darwin" ] || { echo "build_app.sh runs on macOS" >&2; exit 1; }

make bundle
app="dist/MacLLM.app"
version="$(.venv/bin/python -c 'from importlib.metadata import version; print(version("macllm-app"))')"

identity="${MACOS_SIGN_IDENTITY:--}"
if [ "$identity" = "-" ]; then
    codesign --force --deep --sign - "$app"
else
    codesign --force --deep --options runtime --timestamp --sign "$identity" "$app"
fi
codesign --verify --deep --strict "$app"

exe="$app/Contents/MacOS/MacLLM"
gpu_layers=()
[ "${MACLLM_SMOKE_ENGINES:-}" = "cpu" ] && gpu_layers=(--gpu-layers 0)
home="$(mktemp -d)"
MACLLM_HOME="$home" QT_QPA_PLATFORM=offscreen "$exe" --self-test --timeout 300
MACLLM_HOME="$home" "$exe" cli chat --prompt "Say hello." --max-tokens 8 \
    "${gpu_layers[@]}" --json
MACLLM_HOME="$home" "$exe" cli chat --engine mlx --prompt "Say hello." --max-tokens 4 --json
rm -rf "$home"

dmg="dist/MacLLM-$version.dmg"
rm -f "$dmg"
hdiutil create -volname "MacLLM" -srcfolder "$app" -ov -format UDZO "$dmg"

if [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ] && [ -n "${APPLE_APP_PASSWORD:-}" ]; then
    xcrun notarytool submit "$dmg" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
        --password "$APPLE_APP_PASSWORD" --wait
    xcrun stapler staple "$dmg"
fi
echo "built $dmg ($(du -sh "$dmg" | cut -f1))"
