#!/usr/bin/env bash
# Renders the application icons from icon.svg (needs ImageMagick with an SVG delegate).
# The PNGs are committed, so builds never need this; run it after changing icon.svg.
set -euo pipefail
cd "$(dirname "$0")"
render() { convert -background none -density 384 icon.svg -resize "$1x$1" "PNG32:$2"; }
render 32 32x32.png
render 128 128x128.png
render 256 128x128@2x.png
render 512 icon.png
render 128 ../ui/public/icon.png
