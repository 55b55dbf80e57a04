#!/usr/bin/env bash
# Rebuild requirements/ci.txt, the exact package set CI installs, from a clean environment.
# Run it when you mean to upgrade dependencies, then commit the new pins so CI tests them.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e ".[dev]"
{
  echo "# The exact package set CI installs (CPython $(python -c 'import sys; print(*sys.version_info[:2], sep=".")'), Linux x86-64)."
  echo "# pyproject.toml keeps version ranges for users; refresh with: bash requirements/refresh.sh"
  echo "pip==$(python -m pip --version | cut -d' ' -f2)"
  # --all: setuptools too (torch requires it); pip has its own line above
  python -m pip freeze --all --exclude-editable | grep -v -e '^#' -e '^pip=='
} > requirements/ci.txt
rm -rf "$(dirname "$venv")"
echo "wrote requirements/ci.txt ($(grep -vc '^#' requirements/ci.txt) pins)"
