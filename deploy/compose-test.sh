#!/usr/bin/env bash
# `make compose-test`: the compose stack, built and started for real, with podman.
#
#  1. a Debian base image with Python 3.11 (debootstrap + podman import; kept between runs),
#  2. the greenprune image from the Dockerfile (torch from a local wheel folder when there is
#     one; the dependencies' wheels kept in a wheelhouse between runs),
#  3. compose.yaml + compose.cpu.yaml up with podman-compose, under its own project name and
#     loopback ports, and every healthcheck passing,
#  4. the reference model built in the pruning container, into the `models` volume (seeded with
#     a built copy when there is one, so that the build only checks its recipe hash),
#  5. `greenprune run experiments/demo.yaml` from the host, checked with `greenprune report`,
#  6. the stack down (volumes kept) and up again: the results and checkpoints are still there and
#     a second `greenprune run` submits nothing,
#  7. everything torn down: containers, network, volumes, and the image it built.
#
# Needs root on a Debian-like machine (it installs podman, runc and debootstrap when missing).
# Settings (environment):
#   KEEP_IMAGES=1        keep the greenprune image (the base image is kept anyway)
#   REUSE_IMAGE=1        use that kept image instead of building it again
#   DROP_BASE=1          remove the base image too (the next run rebuilds it)
#   KEEP_STACK=1         leave the stack and its volumes up at the end, for a look around
#   COMPOSE_TEST_CACHE   cache folder (default ~/.cache/greenprune-compose)
#   COMPOSE_TEST_PROJECT compose project name (default greenprune-compose-test)
#   COMPOSE_TEST_{PRUNING,EVAL,RESULTS,APP}_PORT  loopback ports (51051, 51052, 51053, 18501)
#   TORCH_WHEELS         folder holding the CPU torch wheel (default: the first folder in
#                        PIP_FIND_LINKS that holds one; none: the PyTorch CPU index)
#   VENV                 the host virtual environment with the greenprune CLI (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

STARTED=$SECONDS
CACHE=${COMPOSE_TEST_CACHE:-$HOME/.cache/greenprune-compose}
PROJECT=${COMPOSE_TEST_PROJECT:-greenprune-compose-test}
BASE_IMAGE=${COMPOSE_TEST_BASE_IMAGE:-localhost/greenprune-base:bookworm}
IMAGE=localhost/${PROJECT}:latest
VENV=${VENV:-.venv}
GREENPRUNE=$VENV/bin/greenprune
TORCH_VERSION=2.13.0
EXPERIMENT=experiments/demo.yaml
LOGS=${COMPOSE_TEST_LOGS:-artifacts/compose-test}
# Time limits (seconds) for the slow steps: every wait below is bounded.
HEALTH_TIMEOUT=${COMPOSE_TEST_HEALTH_TIMEOUT:-420}
MODEL_TIMEOUT=${COMPOSE_TEST_MODEL_TIMEOUT:-900}
RUN_TIMEOUT=${COMPOSE_TEST_RUN_TIMEOUT:-1800}

# The stack's published ports and a bearer token, for compose.yaml and for the host CLI alike.
export GREENPRUNE_PRUNING_PORT=${COMPOSE_TEST_PRUNING_PORT:-51051}
export GREENPRUNE_EVAL_PORT=${COMPOSE_TEST_EVAL_PORT:-51052}
export GREENPRUNE_RESULTS_PORT=${COMPOSE_TEST_RESULTS_PORT:-51053}
export GREENPRUNE_APP_PORT=${COMPOSE_TEST_APP_PORT:-18501}
export GREENPRUNE_IMAGE=$IMAGE
GREENPRUNE_TOKEN=compose-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export GREENPRUNE_TOKEN
# podman here: runc, and container limits within the machine's own (the defaults exceed them).
export CONTAINERS_CONF=$CACHE/containers.conf

log() { printf '== [%4ds] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() {
  printf 'compose-test: FAILED: %s\n' "$*" >&2
  exit 1
}

# -- tools -------------------------------------------------------------------------------------

[ -x "$GREENPRUNE" ] || fail "no $GREENPRUNE: run \`make venv\` first"
if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
  || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "podman, runc and debootstrap are missing, and this is not root"
  log "installing podman, runc and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq podman runc debootstrap >/dev/null
fi
mkdir -p "$CACHE/wheelhouse" "$LOGS"
COMPOSE_BIN=$CACHE/tools/bin/podman-compose
if [ ! -x "$COMPOSE_BIN" ]; then
  log "installing podman-compose into $CACHE/tools"
  python3 -m venv "$CACHE/tools"
  timeout 600 "$CACHE/tools/bin/pip" install -q "podman-compose==1.6.0"
fi
# podman's default limits exceed what this kind of machine grants (nproc above pid_max fails):
# containers get the highest of a few that starts one, probed once the base image exists.
write_limits() {
  cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=$1:$1", "nproc=$1:$1"]
[engine]
runtime = "runc"
EOF
}
write_limits 1024

compose() {
  timeout 600 "$COMPOSE_BIN" -p "$PROJECT" -f compose.yaml -f compose.cpu.yaml "$@"
}
container_of() {
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}
SERVICES=(results pruning eval app)

# -- teardown, whatever happens ----------------------------------------------------------------

teardown() {
  local status=$?
  set +e
  if [ "$status" != 0 ]; then
    log "failed (exit $status): the services' last log lines (all in $LOGS)"
  fi
  for service in "${SERVICES[@]}"; do
    name=$(container_of "$service")
    [ -n "$name" ] || continue
    podman logs "$name" >"$LOGS/$service.log" 2>&1
    [ "$status" = 0 ] || { echo "--- $service"; tail -n 40 "$LOGS/$service.log"; }
  done
  if [ "${KEEP_STACK:-0}" = 1 ]; then
    log "KEEP_STACK=1: the stack stays up (project $PROJECT); remove it with"
    echo "  CONTAINERS_CONF=$CONTAINERS_CONF $COMPOSE_BIN -p $PROJECT -f compose.yaml" \
      "-f compose.cpu.yaml down -v && podman rmi $IMAGE"
    exit "$status"
  fi
  log "tearing down: containers, network, volumes"
  compose down -v -t 10 >/dev/null 2>&1
  for volume in $(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT"); do
    podman volume rm -f "$volume" >/dev/null
  done
  if [ "${KEEP_IMAGES:-0}" != 1 ]; then
    log "removing $IMAGE (KEEP_IMAGES=1 keeps it)"
    podman rmi -f "$IMAGE" >/dev/null 2>&1
  fi
  if [ "${DROP_BASE:-0}" = 1 ]; then
    log "removing $BASE_IMAGE (DROP_BASE=1)"
    podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1
  fi
  log "done (exit $status)"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# A run that was killed may have left its stack behind.
if [ -n "$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")$(podman volume ls -q \
  --filter "label=io.podman.compose.project=$PROJECT")" ]; then
  log "removing what an earlier run of $PROJECT left behind"
  compose down -v -t 5 >/dev/null 2>&1 || true
fi

for port in "$GREENPRUNE_PRUNING_PORT" "$GREENPRUNE_EVAL_PORT" "$GREENPRUNE_RESULTS_PORT" \
  "$GREENPRUNE_APP_PORT"; do
  python3 -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1]))).close()' \
    "$port" 2>/dev/null || fail "port $port is taken; set COMPOSE_TEST_*_PORT"
done

# -- images ------------------------------------------------------------------------------------

if ! podman image exists "$BASE_IMAGE"; then
  [ "$(id -u)" = 0 ] || fail "debootstrap needs root to build $BASE_IMAGE"
  log "building the base image $BASE_IMAGE (debootstrap bookworm, minbase + python3-venv)"
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/greenprune-base.XXXXXX")
  timeout 900 debootstrap --variant=minbase --include=python3,python3-venv bookworm \
    "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$LOGS/debootstrap.log" 2>&1 \
    || { rm -rf "$rootfs"; fail "debootstrap failed (see $LOGS/debootstrap.log)"; }
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | podman import -q - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

hard_nofile=$(ulimit -Hn) hard_nproc=$(ulimit -Hu)
[ "$hard_nofile" != unlimited ] || hard_nofile=1048576
[ "$hard_nproc" != unlimited ] || hard_nproc=1048576
started_one=
for limit in 16384 4096 1024; do
  [ "$limit" -le "$hard_nofile" ] && [ "$limit" -le "$hard_nproc" ] || continue
  write_limits "$limit"
  if podman run --rm "$BASE_IMAGE" true >/dev/null 2>&1; then
    started_one=1
    break
  fi
done
[ -n "$started_one" ] || { podman run --rm "$BASE_IMAGE" true; fail "podman cannot start a container"; }
log "containers: runc, nofile and nproc limits $limit"

build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg WHEELHOUSE=/wheelhouse
  -v "$(realpath "$CACHE/wheelhouse"):/wheelhouse")
torch_wheels=${TORCH_WHEELS-}
if [ -z "${TORCH_WHEELS+set}" ]; then
  for folder in ${PIP_FIND_LINKS:-}; do
    if compgen -G "$folder/torch-$TORCH_VERSION+cpu-*.whl" >/dev/null; then
      torch_wheels=$folder
      break
    fi
  done
fi
if [ -n "$torch_wheels" ]; then
  build_args+=(-v "$(realpath "$torch_wheels"):/torch-wheels:ro" --build-arg
    TORCH_FIND_LINKS=/torch-wheels)
fi
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$ca_bundle" ]; then
  build_args+=(-v "$(realpath "$ca_bundle"):/run/host-ca.crt:ro" --build-arg
    PIP_CERT=/run/host-ca.crt)
fi
if [ "${REUSE_IMAGE:-0}" = 1 ] && podman image exists "$IMAGE"; then
  log "REUSE_IMAGE=1: using the existing $IMAGE"
else
  log "building $IMAGE from the Dockerfile (torch from ${torch_wheels:-the PyTorch CPU index})"
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true  # else a kept one is left behind untagged
  timeout 1500 podman build --network host --layers=false --force-rm "${build_args[@]}" \
    -t "$IMAGE" . >"$LOGS/build.log" 2>&1 \
    || { tail -n 30 "$LOGS/build.log"; fail "podman build failed (see $LOGS/build.log)"; }
fi
log "image: $(podman image inspect "$IMAGE" --format '{{.Size}}' \
  | awk '{printf "%.2f GB", $1 / 1e9}'), base $BASE_IMAGE"
podman run --rm "$IMAGE" python -c '
import os, torch
assert torch.version.cuda is None, "a CUDA build of torch"
assert os.getuid() != 0, "runs as root"
print("torch", torch.__version__, "as uid", os.getuid())'

# -- the stack -----------------------------------------------------------------------------------

# Waits until every service's own healthcheck (the one compose.yaml declares) passes. podman
# runs healthchecks from systemd timers, which this machine lacks, so this runs them itself.
wait_healthy() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) pending=("${SERVICES[@]}") still name state
  while [ "${#pending[@]}" -gt 0 ]; do
    still=()
    for service in "${pending[@]}"; do
      name=$(container_of "$service")
      state=$(podman inspect "$name" --format '{{.State.Status}}' 2>/dev/null || echo missing)
      [ "$state" = running ] || fail "$service is $state, not running"
      if podman healthcheck run "$name" >/dev/null 2>&1; then
        log "$service is healthy"
      else
        still+=("$service")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    [ "${#pending[@]}" -eq 0 ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "not healthy after ${HEALTH_TIMEOUT}s: ${pending[*]}"
    sleep 3
  done
}

start_stack() {
  compose up -d --no-build >"$LOGS/up-$1.log" 2>&1 \
    || { cat "$LOGS/up-$1.log"; fail "podman-compose up failed"; }
  wait_healthy
}

# The report's rows for the demo, as CSV, with its row count checked.
report() {
  timeout 120 "$GREENPRUNE" report --experiment demo --format csv >"$LOGS/report-$1.csv" \
    || fail "greenprune report failed"
  "$VENV/bin/python" - "$LOGS/report-$1.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
if not rows:
    sys.exit(f"{sys.argv[1]}: no rows")
print(f"{len(rows)} rows, columns: {', '.join(rows[0])}")
EOF
}

checkpoints() {
  podman exec "$(container_of pruning)" find /data/checkpoints -mindepth 1 -maxdepth 1 \
    -not -name '.*' -printf '%f\n' | sort
}

# Runs the experiment from the host against the published ports; prints the summary line.
run_demo() {
  timeout "$RUN_TIMEOUT" "$GREENPRUNE" run "$EXPERIMENT" --no-progress 2>&1 \
    | tee "$LOGS/run-$1.log" || fail "greenprune run failed ($1)"
}

log "starting the stack (project $PROJECT, ports $GREENPRUNE_PRUNING_PORT," \
  "$GREENPRUNE_EVAL_PORT, $GREENPRUNE_RESULTS_PORT, app $GREENPRUNE_APP_PORT)"
start_stack first
for service in "${SERVICES[@]}"; do
  user=$(podman exec "$(container_of "$service")" id -u)
  [ "$user" != 0 ] || fail "$service runs as root"
done
curl_app=$(python3 -c "import urllib.request; print(urllib.request.urlopen(
  'http://127.0.0.1:$GREENPRUNE_APP_PORT/_stcore/health', timeout=5).read().decode())")
[ "$curl_app" = ok ] || fail "the app's published port answers $curl_app"

# The reference model: `greenprune reference-model build` in the pruning container, into the
# models volume. Training it takes minutes (16 on a busy 2-core machine), so a built copy goes
# into the fresh volume first when there is one: the one kept from an earlier run, else the
# host's own (GREENPRUNE_CACHE_DIR, by default ~/.cache/greenprune; `make test` builds it). The
# command then checks its recipe hash, and rebuilds it in the container when the recipe changed.
pruning=$(container_of pruning)
reference_dir=/data/models/cache/models/reference-tiny-llama
kept_model=$CACHE/reference-tiny-llama
host_model=${GREENPRUNE_CACHE_DIR:-$HOME/.cache/greenprune}/models/reference-tiny-llama
for seed in "$kept_model" "$host_model"; do
  [ -f "$seed/greenprune_reference.json" ] || continue
  log "putting a built reference model into the models volume (from $seed)"
  podman exec "$pruning" mkdir -p "$(dirname "$reference_dir")"
  podman cp "$seed" "$pruning:$reference_dir"
  podman exec -u 0 "$pruning" chown -R 10001:10001 "$reference_dir"
  break
done
log "greenprune reference-model build, in the pruning container"
timeout "$MODEL_TIMEOUT" podman exec "$pruning" greenprune reference-model build \
  || fail "the reference model did not build"
rm -rf "$kept_model.new"
podman cp "$pruning:$reference_dir" "$kept_model.new"
rm -rf "$kept_model"
mv "$kept_model.new" "$kept_model"

log "greenprune run $EXPERIMENT (from the host)"
run_demo first
log "greenprune report"
report first
checkpoints >"$LOGS/checkpoints-first.txt"
[ -s "$LOGS/checkpoints-first.txt" ] || fail "no checkpoints in the checkpoints volume"
log "$(wc -l <"$LOGS/checkpoints-first.txt") checkpoints in the volume"

log "restarting the stack (down without -v, then up)"
compose down -t 10 >"$LOGS/down.log" 2>&1 || { cat "$LOGS/down.log"; fail "down failed"; }
start_stack second
report second
cmp -s <(sort "$LOGS/report-first.csv") <(sort "$LOGS/report-second.csv") \
  || fail "the report changed across the restart (see $LOGS/report-*.csv)"
checkpoints >"$LOGS/checkpoints-second.txt"
cmp -s "$LOGS/checkpoints-first.txt" "$LOGS/checkpoints-second.txt" \
  || fail "the checkpoints changed across the restart"
log "results and checkpoints survived the restart"

log "greenprune run again: everything is recorded, nothing is submitted"
run_demo second
summary=$(grep -E '^[0-9]+ steps: [0-9]+ already recorded, [0-9]+ submitted' \
  "$LOGS/run-second.log" | tail -n 1)
[[ $summary =~ ^([0-9]+)\ steps:\ ([0-9]+)\ already\ recorded,\ ([0-9]+)\ submitted ]] \
  || fail "no summary line in the second run's output"
[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ] && [ "${BASH_REMATCH[3]}" = 0 ] \
  || fail "the second run did not skip everything: $summary"
report third
cmp -s <(sort "$LOGS/report-first.csv") <(sort "$LOGS/report-third.csv") \
  || fail "the second run changed the results"

log "compose-test passed"
