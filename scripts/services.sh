#!/usr/bin/env bash
# Starts PostgreSQL, Redis and SeaweedFS (S3) when they are not already running.
# `scripts/services.sh start` then `eval "$(scripts/services.sh env)"`.
set -euo pipefail
cd "$(dirname "$0")/.."
WEED_DIR=/tmp/custody-weed
S3_PORT=18333
ACCESS_KEY=custodyci
SECRET_KEY=custodycisecret

start() {
  if ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 50); do pg_isready -h 127.0.0.1 -q && break; sleep 0.2; done
  fi
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='custody'" | grep -q 1 \
    || createdb -h 127.0.0.1 -U postgres custody
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --logfile /tmp/custody-redis.log
  fi
  if ! curl -s -o /dev/null "http://127.0.0.1:${S3_PORT}/"; then
    mkdir -p "$WEED_DIR/data"
    cat > "$WEED_DIR/s3.json" <<JSON
{"identities":[{"name":"custody","credentials":[{"accessKey":"$ACCESS_KEY","secretKey":"$SECRET_KEY"}],
 "actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
    nohup .venv/bin/weed mini -dir="$WEED_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port=$S3_PORT -master.port=19333 -volume.port=19340 -filer.port=18888 \
      -admin.port=13646 -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
      -s3.allowDeleteBucketNotEmpty=false -s3.autoCreateBucket=false \
      -s3.config="$WEED_DIR/s3.json" > "$WEED_DIR/weed.log" 2>&1 &
    for _ in $(seq 150); do curl -s -o /dev/null "http://127.0.0.1:${S3_PORT}/" && break; sleep 0.2; done
  fi
}

env_vars() {
  echo "export CUSTODY_TEST_S3_ENDPOINT=http://127.0.0.1:${S3_PORT}"
  echo "export AWS_ACCESS_KEY_ID=${ACCESS_KEY}"
  echo "export AWS_SECRET_ACCESS_KEY=${SECRET_KEY}"
  echo "export AWS_DEFAULT_REGION=us-east-1"
}

case "${1:-}" in
  start) start ;;
  env) env_vars ;;
  stop) pkill -f "weed mini -dir=$WEED_DIR" || true ;;
  *) echo "usage: $0 start|env|stop" >&2; exit 2 ;;
esac
