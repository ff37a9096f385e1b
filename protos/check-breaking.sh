#!/usr/bin/env bash
# `buf breaking` against main: fails when the protos break what main's clients were built on.
#
# "Against main" means the base this tree will land on: the merge base with main (or origin/main),
# which is HEAD itself for uncommitted changes on main; and the previous landed commit (HEAD^) when
# HEAD is main's tip with no proto changes on top, as in CI after a merge. The base's protos are built into an image together with the google/ imports copied by
# `make lint`, since those are not committed. Usage: protos/check-breaking.sh [BUF] [BASE_REF]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
buf="${1:-$root/.venv/bin/buf}"
base="${2:-}"
cd "$root"

if [ -z "$base" ]; then
  for main in main origin/main; do
    if git rev-parse -q --verify "$main^{commit}" >/dev/null; then
      base="$(git merge-base HEAD "$main" || true)"
      break
    fi
  done
  # HEAD is main's tip with its protos unchanged (CI after a merge): check the last landing.
  if [ -n "$base" ] && [ "$base" = "$(git rev-parse HEAD)" ] \
    && git diff --quiet HEAD -- protos; then
    base="$(git rev-parse -q --verify 'HEAD~1^{commit}' || true)"
  fi
fi
if [ -z "$base" ] || ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  echo "buf breaking: no base commit on main to compare with (shallow clone?); skipped" >&2
  exit 0
fi
if ! git cat-file -e "$base:protos/buf.yaml" 2>/dev/null; then
  echo "buf breaking: $base has no protos/buf.yaml; skipped" >&2
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git archive "$base" protos | tar -x -C "$tmp"
cp -R "$here/google" "$tmp/protos/google"
(cd "$tmp/protos" && "$buf" build -o "$tmp/base.binpb")
echo "buf breaking against $(git rev-parse --short "$base")"
cd "$here" && "$buf" breaking --against "$tmp/base.binpb"
