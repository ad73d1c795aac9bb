#!/usr/bin/env bash
# Builds the container image and exercises it and compose.yaml, where Docker can.
# Exit 0: all good. Exit 77: skipped, the reason on the last line (no docker, no daemon,
# or the base image cannot be pulled from here). Anything else: a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
skip() { echo "skipped: $*"; exit 77; }

command -v docker >/dev/null 2>&1 || skip "docker is not installed"
docker info >/dev/null 2>&1 || skip "the docker daemon is not reachable ($(docker info 2>&1 | tail -1))"
base=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile | head -1)
docker image inspect "$base" >/dev/null 2>&1 || docker pull "$base" >/dev/null 2>&1 \
  || skip "the base image $base cannot be pulled from this machine"

image=paperbot:smoke
docker build --quiet --tag "$image" . >/dev/null
echo "built $image"
docker run --rm "$image" paperbot --version
[ "$(docker run --rm "$image" id -u)" != 0 ] || { echo "the image runs as root"; exit 1; }
if docker run --rm "$image" paperbot health; then echo "health passed with no bot running"; exit 1; fi
if docker run --rm --env DISCORD_TOKEN= "$image"; then echo "a run without a token exited 0"; exit 1; fi
[ "$(docker inspect --format '{{json .Config.Healthcheck.Test}}' "$image")" = '["CMD","paperbot","health"]' ] \
  || { echo "no HEALTHCHECK running paperbot health"; exit 1; }

if docker compose version >/dev/null 2>&1; then
  made=()
  [ -e .env ] || { cp .env.example .env; made+=(.env); }
  [ -e config.toml ] || { cp config.example.toml config.toml; made+=(config.toml); }
  trap 'rm -f "${made[@]}"' EXIT
  docker compose config --quiet
  POSTGRES_PASSWORD=smoke docker compose --profile cluster config --quiet
  [ "$(docker compose --profile cluster config --services | sort | tr '\n' ' ')" = "bot-0 bot-1 paperbot postgres redis " ] \
    || { echo "compose.yaml: the cluster profile does not list bot-0 bot-1 postgres redis"; exit 1; }
  [ "$(docker compose config --services)" = "paperbot" ] || { echo "compose.yaml: the default is not the one bot"; exit 1; }
  docker compose build --quiet
  echo "compose.yaml: valid (default and cluster profiles), builds"
else
  echo "docker compose is not installed: compose.yaml not exercised"
fi
echo "ok"
