#!/usr/bin/env bash
# sparkscale — install the Spark JVM heap agent on an EMR node. An EMR bootstrap action: it runs on every node
# when the cluster starts and on every node added later, before Spark is installed.
#
# usage: install-heap-agent.sh AGENT_URL [REGION] [--state-table TABLE]
#   AGENT_URL  where the agent is: s3://bucket/key/heap-agent.pyz; or an S3 prefix ending in "/" holding
#              heap-agent.pyz; or s3://…/*.zip, the bootstrap folder as a zip (a CDK directory asset).
#   REGION     region to publish metrics to (default: $AWS_REGION, else the instance metadata service).
#   --state-table TABLE  the stack's state table: on the master node the agent also writes the YARN node report
#              there (which nodes run containers and application masters) for safe scale-in
#              (docs/safe-scale-in.md); the stack's bootstrap action passes it. Also SPARKSCALE_STATE_TABLE.
#
# It needs only what EMR nodes have: bash, coreutils, python3 (3.7+), the AWS CLI, systemd; no internet
# beyond S3 and CloudWatch. What it does:
#   1. reads the cluster id (jobFlowId) from /mnt/var/lib/info/job-flow.json;
#   2. copies the agent to /opt/sparkscale/heap-agent.pyz and checks that this node's python3 runs it;
#   3. writes Spark's metrics config (StatsdSink → 127.0.0.1:8125 every 10 s, JvmSource on driver and
#      executors) to /etc/sparkscale/metrics.properties, and into /etc/spark/conf/metrics.properties as a
#      marked block: now if Spark is installed, else from a background job that waits for Spark's install;
#      and likewise spark.sql.streaming.metricsEnabled=true into
#      /etc/spark/conf/spark-defaults.conf, so Structured Streaming queries report their rates and latency
#      (docs/streaming.md; SPARKSCALE_STREAMING_METRICS=0 leaves spark-defaults.conf alone);
#   4. on the master node only (isMaster in /mnt/var/lib/info/instance.json), turns on the agent's YARN
#      collector (--yarn-rm-url): the ResourceManager's REST API, polled every 10 s, published to
#      Sparkscale/Yarn once a minute. The RM address: SPARKSCALE_YARN_RM_URL, else
#      yarn.resourcemanager.webapp.address from /etc/hadoop/conf/yarn-site.xml when it is there already (a
#      re-run), else http://<this node's FQDN>:8088 (EMR's RM listens on the master's private DNS name, port 8088);
#   5. installs and starts the systemd unit sparkscale-heap-agent.service (Restart=on-failure).
# Running it again replaces what it wrote (idempotent).
#
# Environment, for tests and tuning: SPARKSCALE_ROOT (prefix of every path written or read; default none),
# SPARKSCALE_PYTHON (/usr/bin/python3), SPARKSCALE_STATSD_PORT (8125), SPARKSCALE_INTERVAL_S (60),
# SPARKSCALE_RUN_AS (nobody), SPARKSCALE_SPARK_CONF_WAIT_S (1800; 0 = no background job),
# SPARKSCALE_YARN (auto: on the master only; off), SPARKSCALE_YARN_RM_URL (http://HOST:PORT),
# SPARKSCALE_YARN_HIGH_RESOLUTION (0; 1 = a datapoint every 10 s, StorageResolution 1; see agent/yarn.py for cost),
# SPARKSCALE_STREAMING_METRICS (1; 0 = do not add spark.sql.streaming.metricsEnabled to spark-defaults.conf).
set -euo pipefail

ROOT="${SPARKSCALE_ROOT:-}"
if [[ -z "$ROOT" && "$(id -u)" -ne 0 ]]; then
  exec sudo -E bash "$0" "$@" # EMR runs bootstrap actions as the hadoop user
fi

readonly UNIT_NAME="sparkscale-heap-agent.service"
readonly AGENT_PATH="/opt/sparkscale/heap-agent.pyz"
readonly JOB_FLOW_JSON="$ROOT/mnt/var/lib/info/job-flow.json"
readonly INSTANCE_JSON="$ROOT/mnt/var/lib/info/instance.json"
readonly YARN_SITE_XML="$ROOT/etc/hadoop/conf/yarn-site.xml"
readonly YARN_MODE="${SPARKSCALE_YARN:-auto}"
readonly YARN_HIGH_RESOLUTION="${SPARKSCALE_YARN_HIGH_RESOLUTION:-0}"
readonly STREAMING_METRICS="${SPARKSCALE_STREAMING_METRICS:-1}"
STATE_TABLE="${SPARKSCALE_STATE_TABLE:-}"
readonly CONF_DIR="$ROOT/etc/sparkscale"
readonly SPARK_CONF_DIR="$ROOT/etc/spark/conf"
readonly UNIT_DIR="$ROOT/etc/systemd/system"
readonly PYTHON="${SPARKSCALE_PYTHON:-/usr/bin/python3}"
readonly PORT="${SPARKSCALE_STATSD_PORT:-8125}"
readonly INTERVAL_S="${SPARKSCALE_INTERVAL_S:-60}"
readonly RUN_AS="${SPARKSCALE_RUN_AS:-nobody}"
readonly SPARK_CONF_WAIT_S="${SPARKSCALE_SPARK_CONF_WAIT_S:-1800}"
readonly BLOCK_BEGIN="# BEGIN sparkscale heap agent"
readonly BLOCK_END="# END sparkscale heap agent"

log() { echo "install-heap-agent: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

usage() { die "usage: install-heap-agent.sh AGENT_URL [REGION] [--state-table TABLE]"; }

imds_region() {
  local token
  token="$(curl -sS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    http://169.254.169.254/latest/api/token)" || return 1
  curl -sS -m 2 -H "X-aws-ec2-metadata-token: $token" \
    http://169.254.169.254/latest/meta-data/placement/region
}

read_cluster_id() {
  [[ -r "$JOB_FLOW_JSON" ]] || die "cannot read $JOB_FLOW_JSON (not an EMR node?)"
  "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["jobFlowId"])' "$JOB_FLOW_JSON" ||
    die "no jobFlowId in $JOB_FLOW_JSON"
}

# is_master: true when instance.json says so; a missing or unreadable file means "not the master".
is_master() {
  [[ -r "$INSTANCE_JSON" ]] || return 1
  "$PYTHON" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("isMaster") is True else 1)' \
    "$INSTANCE_JSON" 2>/dev/null
}

# rm_url: the ResourceManager's web address on this (master) node, as http://HOST:PORT.
rm_url() {
  if [[ -n "${SPARKSCALE_YARN_RM_URL:-}" ]]; then
    echo "$SPARKSCALE_YARN_RM_URL"
    return
  fi
  local fqdn address=""
  fqdn="$(hostname -f 2>/dev/null || hostname)"
  if [[ -r "$YARN_SITE_XML" ]]; then
    address="$("$PYTHON" - "$YARN_SITE_XML" <<'PY' 2>/dev/null || true
import sys
import xml.etree.ElementTree as ET
for prop in ET.parse(sys.argv[1]).getroot().iter("property"):
    if (prop.findtext("name") or "").strip() == "yarn.resourcemanager.webapp.address":
        print((prop.findtext("value") or "").strip())
PY
)"
  fi
  if [[ "$address" =~ ^[A-Za-z0-9.-]+:[0-9]+$ ]]; then # literal host:port only, not ${...}
    [[ "${address%%:*}" == "0.0.0.0" ]] && address="$fqdn:${address##*:}"
    echo "http://$address"
  else
    echo "http://$fqdn:8088"
  fi
}

# yarn_args: the agent's YARN flags on the master node, nothing elsewhere.
yarn_args() {
  case "$YARN_MODE" in
  off) return ;;
  auto) is_master || return 0 ;;
  *) die "bad SPARKSCALE_YARN '$YARN_MODE' (auto or off)" ;;
  esac
  local url
  url="$(rm_url)"
  [[ "$url" =~ ^https?://[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || die "bad ResourceManager URL '$url'"
  printf ' --yarn-rm-url %s' "$url"
  if [[ "$YARN_HIGH_RESOLUTION" == "1" ]]; then
    printf ' --yarn-high-resolution'
  fi
  if [[ -n "$STATE_TABLE" ]]; then
    printf ' --state-table %s' "$STATE_TABLE"
  fi
}

# fetch_agent URL DEST: copy the agent from S3 (three URL forms, see the header).
fetch_agent() {
  local url="$1" dest="$2" work
  work="$(mktemp -d)"
  case "$url" in
  */) aws s3 cp --only-show-errors --region "$REGION" "${url}heap-agent.pyz" "$work/heap-agent.pyz" ||
    die "could not copy the agent from ${url}heap-agent.pyz" ;;
  *.zip)
    aws s3 cp --only-show-errors --region "$REGION" "$url" "$work/bootstrap.zip" ||
      die "could not copy the agent from $url"
    "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("heap-agent.pyz", sys.argv[2])' \
      "$work/bootstrap.zip" "$work" || die "no heap-agent.pyz in $url"
    ;;
  *) aws s3 cp --only-show-errors --region "$REGION" "$url" "$work/heap-agent.pyz" ||
    die "could not copy the agent from $url" ;;
  esac
  [[ -s "$work/heap-agent.pyz" ]] || die "could not copy the agent from $url"
  install -D -m 0644 "$work/heap-agent.pyz" "$dest"
  rm -rf "$work"
}

metrics_properties() {
  cat <<EOF
$BLOCK_BEGIN (bootstrap/install-heap-agent.sh; same as bootstrap/spark-metrics.json)
*.sink.statsd.host=127.0.0.1
*.sink.statsd.port=$PORT
*.sink.statsd.period=10
*.sink.statsd.unit=seconds
driver.sink.statsd.class=org.apache.spark.metrics.sink.StatsdSink
executor.sink.statsd.class=org.apache.spark.metrics.sink.StatsdSink
driver.source.jvm.class=org.apache.spark.metrics.source.JvmSource
executor.source.jvm.class=org.apache.spark.metrics.source.JvmSource
$BLOCK_END
EOF
}

# The streaming metrics switch (the same as sparkscale.emr_setup's spark-defaults classification).
spark_defaults() {
  cat <<EOF
$BLOCK_BEGIN (bootstrap/install-heap-agent.sh; as sparkscale emr-configurations' spark-defaults)
spark.sql.streaming.metricsEnabled true
$BLOCK_END
EOF
}

# The Spark conf files we keep a block in: metrics.properties, and spark-defaults.conf unless turned off.
spark_conf_files() {
  echo metrics.properties
  if [[ "$STREAMING_METRICS" == "1" ]]; then
    echo spark-defaults.conf
  fi
}

# Replace our block in one of Spark's conf files, keeping every other line. Fails when Spark is not installed.
patch_spark_file() {
  local name="$1" file="$SPARK_CONF_DIR/$1" tmp
  [[ -d "$SPARK_CONF_DIR" ]] || return 1
  tmp="$(mktemp)"
  if [[ -f "$file" ]]; then
    sed "/^$BLOCK_BEGIN/,/^$BLOCK_END/d" "$file" >"$tmp"
  fi
  cat "$CONF_DIR/$name" >>"$tmp"
  install -m 0644 "$tmp" "$file"
  rm -f "$tmp"
}

patch_spark_conf() {
  local name
  [[ -d "$SPARK_CONF_DIR" ]] || return 1
  for name in $(spark_conf_files); do
    patch_spark_file "$name"
  done
}

# Bootstrap actions run before EMR installs Spark: wait for it, and re-patch if provisioning rewrites a file.
keep_spark_conf_patched() {
  local deadline=$((SECONDS + SPARK_CONF_WAIT_S)) name
  while ((SECONDS < deadline)); do
    if [[ -d "$SPARK_CONF_DIR" ]]; then
      for name in $(spark_conf_files); do
        if ! grep -qs "^$BLOCK_BEGIN" "$SPARK_CONF_DIR/$name"; then
          patch_spark_file "$name" || true
        fi
      done
    fi
    sleep 10
  done
}

write_unit() {
  install -d -m 0755 "$UNIT_DIR"
  cat >"$UNIT_DIR/$UNIT_NAME" <<EOF
[Unit]
Description=sparkscale Spark JVM heap agent (StatsD udp 127.0.0.1:$PORT to CloudWatch)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=AWS_REGION=$REGION
Environment=PYTHONDONTWRITEBYTECODE=1
ExecStart=$PYTHON $AGENT_PATH --port $PORT --cluster-id $CLUSTER_ID --interval-s $INTERVAL_S --run-as $RUN_AS$YARN_ARGS
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=yes
MemoryMax=256M

[Install]
WantedBy=multi-user.target
EOF
  chmod 0644 "$UNIT_DIR/$UNIT_NAME"
}

main() {
  local positional=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
    --state-table)
      [[ $# -ge 2 ]] || usage
      STATE_TABLE="$2"
      shift 2
      ;;
    *)
      positional+=("$1")
      shift
      ;;
    esac
  done
  set -- ${positional[@]+"${positional[@]}"} # bash 4.2 (Amazon Linux 2): an empty array is unbound under -u
  [[ $# -ge 1 && $# -le 2 && -n "$1" ]] || usage
  if [[ -n "$STATE_TABLE" && ! "$STATE_TABLE" =~ ^[A-Za-z0-9_.-]{3,255}$ ]]; then
    die "bad state table name '$STATE_TABLE'"
  fi
  local agent_url="$1"
  REGION="${2:-${AWS_REGION:-}}"
  if [[ -z "$REGION" ]]; then
    REGION="$(imds_region)" || die "no region: pass it as the second argument"
  fi
  [[ "$REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || die "bad region '$REGION'"
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "bad SPARKSCALE_STATSD_PORT '$PORT'"
  [[ "$INTERVAL_S" =~ ^[0-9]+$ ]] || die "bad SPARKSCALE_INTERVAL_S '$INTERVAL_S'"
  [[ "$SPARK_CONF_WAIT_S" =~ ^[0-9]+$ ]] || die "bad SPARKSCALE_SPARK_CONF_WAIT_S '$SPARK_CONF_WAIT_S'"
  command -v "$PYTHON" >/dev/null || die "no $PYTHON on this node"

  CLUSTER_ID="$(read_cluster_id)"
  [[ "$CLUSTER_ID" =~ ^j-[A-Za-z0-9]+$ ]] || die "bad jobFlowId '$CLUSTER_ID' in $JOB_FLOW_JSON"
  log "cluster $CLUSTER_ID, region $REGION, agent $agent_url"
  [[ "$YARN_HIGH_RESOLUTION" =~ ^[01]$ ]] || die "bad SPARKSCALE_YARN_HIGH_RESOLUTION '$YARN_HIGH_RESOLUTION'"
  [[ "$STREAMING_METRICS" =~ ^[01]$ ]] || die "bad SPARKSCALE_STREAMING_METRICS '$STREAMING_METRICS'"
  YARN_ARGS="$(yarn_args)"
  if [[ -n "$YARN_ARGS" ]]; then
    log "master node: YARN collector on:$YARN_ARGS"
  fi

  fetch_agent "$agent_url" "$ROOT$AGENT_PATH"
  "$PYTHON" "$ROOT$AGENT_PATH" --help >/dev/null || die "$PYTHON cannot run $AGENT_PATH"

  install -d -m 0755 "$CONF_DIR"
  metrics_properties >"$CONF_DIR/metrics.properties"
  chmod 0644 "$CONF_DIR/metrics.properties"
  spark_defaults >"$CONF_DIR/spark-defaults.conf"
  chmod 0644 "$CONF_DIR/spark-defaults.conf"
  if patch_spark_conf; then
    log "patched $(spark_conf_files | tr '\n' ' ')in $SPARK_CONF_DIR"
  fi
  if ((SPARK_CONF_WAIT_S > 0)); then
    keep_spark_conf_patched </dev/null >/dev/null 2>&1 &
    disown
    log "background job keeps $(spark_conf_files | tr '\n' ' ')in $SPARK_CONF_DIR patched for ${SPARK_CONF_WAIT_S}s"
  fi

  write_unit
  systemctl daemon-reload
  systemctl enable "$UNIT_NAME"
  systemctl restart "$UNIT_NAME"
  log "started $UNIT_NAME"
}

REGION=""
CLUSTER_ID=""
YARN_ARGS=""
main "$@"
