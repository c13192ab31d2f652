#!/usr/bin/env bash
# What the tests need on top of scripts/setup.sh: pytest and Playwright ([dev]), the Milvus
# backend with milvus-lite and the Milvus standalone server its tests run against ([milvus]), and Debian's Chromium
# for the browser tests (apt-get, so root; skipped when a chromium is already on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet -e ".[service,dev,milvus]"
# The Milvus standalone server of the server tests: unpacked once from the installed `milvus` package
# (no download) into $HASHSEEK_MILVUS_BIN or ~/.cache/hashseek/milvus-server-2.3.5.
python3 -c "import sys; sys.path.insert(0, 'tests'); from milvus_server import unpack_binary; print(unpack_binary())"
# Playwright drives Debian's Chromium (never `playwright install`, which downloads a browser
# build of its own); CHROMIUM_PATH points the tests at another executable.
if ! command -v chromium > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
