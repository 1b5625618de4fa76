#!/usr/bin/env bash
# Qt's xcb window plugin needs these Debian/Ubuntu libraries. Install them where we can.
set -u
[ "$(uname -s)" = "Linux" ] || exit 0
PKGS="libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libegl1"
missing=""
for lib in libxcb-cursor.so.0 libxkbcommon-x11.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libEGL.so.1; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $lib"
done
[ -z "$missing" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "Installing Qt's window-system libraries:$missing"
    if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $PKGS; then
        exit 0
    fi
fi
echo "MacLLM needs these system packages for its window: $PKGS" >&2
echo "Install them with your package manager (Debian/Ubuntu: sudo apt-get install $PKGS)." >&2
echo "Without a display, run headless with QT_QPA_PLATFORM=offscreen." >&2
exit 0
