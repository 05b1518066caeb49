#!/usr/bin/env bash
# GetSecretValue throughput and latency: coffer (release build, `server --dev`) against
# moto_server, same load generator, same machine, same run. See docs/benchmarks.md.
#
#   bench/run.sh
#
# Environment (all optional):
#   DURATION=20      measured seconds per target
#   WARMUP=5         seconds of load before measuring
#   CONNECTIONS=64   concurrent keep-alive connections (one request in flight on each)
#   BENCH_THREADS=   generator threads (default: all cores; the server shares them)
#   SKIP_MOTO=1      coffer only
#   SKIP_AUDIT_OFF=1 skip the second coffer run with `--no-audit` (the cost of auditing)
#   MOTO_SERVER=     path to a moto_server to use instead of .venv/bin/moto_server
#
# Output: a table on stdout; logs and JSON summaries in bench/out/.
#
# Rotation throughput (1,000 secrets through a no-op webhook rotator, with readers checking
# that GetSecretValue never fails meanwhile) is measured separately: .venv/bin/python bench/rotation.py
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/bench/out"
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-$root/target}"
case $target in /*) ;; *) target="$root/$target" ;; esac

duration=${DURATION:-20}
warmup=${WARMUP:-5}
connections=${CONNECTIONS:-64}
moto_version=5.2.1

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

bench_args=(--connections "$connections" --duration "$duration" --warmup "$warmup")
if [ -n "${BENCH_THREADS:-}" ]; then
  bench_args+=(--threads "$BENCH_THREADS")
fi

echo "== build (release)"
cargo build --release -p coffer-cli
cargo build --release -p coffer-e2e --bin coffer-bench
bench="$target/release/coffer-bench"
coffer="$target/release/coffer"

{
  echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
  echo "cpus:    $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
  echo "memory:  $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "kernel:  $(uname -sr)"
  echo "load:    ${connections} connections, ${warmup} s warm-up, ${duration} s measured"
} | tee "$out/machine.txt"

echo "== coffer"
rm -f "$out/coffer.json" "$out/coffer-cmk.json" "$out/coffer-iam-user.json" "$out/coffer-no-audit.json" "$out/moto.json"
"$coffer" server --dev --listen 127.0.0.1:0 >"$out/coffer.log" 2>&1 &
coffer_pid=$!
pids+=("$coffer_pid")
for _ in $(seq 1 600); do
  grep -q '^export AWS_REGION=' "$out/coffer.log" && break
  if ! kill -0 "$coffer_pid" 2>/dev/null; then
    echo "coffer exited:" >&2
    cat "$out/coffer.log" >&2
    exit 1
  fi
  sleep 0.1
done
banner() { sed -n "s/^export $1=//p" "$out/coffer.log" | head -n1 | tr -d "\"'"; }
endpoint=$(banner AWS_ENDPOINT_URL)
if [ -z "$endpoint" ]; then
  echo "coffer printed no banner within 60 s:" >&2
  cat "$out/coffer.log" >&2
  exit 1
fi
"$bench" --label coffer --create --json-out "$out/coffer.json" \
  --endpoint "$endpoint" \
  --access-key-id "$(banner AWS_ACCESS_KEY_ID)" \
  --secret-access-key "$(banner AWS_SECRET_ACCESS_KEY)" \
  --region "$(banner AWS_REGION)" \
  "${bench_args[@]}"
# The same load as an IAM user whose access comes from policies (inline, group and managed,
# with conditions), so every request is evaluated by the policy engine.
aws_cli="$root/.venv/bin/aws"
if [ -x "$aws_cli" ]; then
  iam() {
    AWS_ACCESS_KEY_ID="$(banner AWS_ACCESS_KEY_ID)" AWS_SECRET_ACCESS_KEY="$(banner AWS_SECRET_ACCESS_KEY)" \
      AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
      "$aws_cli" --endpoint-url "$endpoint" --region us-east-1 --output text iam "$@"
  }
  # The same load on a secret under a customer managed key: the cost of a key policy and
  # the key's own material versus the AWS managed key.
  echo "== coffer, secret under a customer managed KMS key"
  cmk=$(AWS_ACCESS_KEY_ID="$(banner AWS_ACCESS_KEY_ID)" AWS_SECRET_ACCESS_KEY="$(banner AWS_SECRET_ACCESS_KEY)" \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$aws_cli" --endpoint-url "$endpoint" --region us-east-1 --output text \
    kms create-key --description bench --query KeyMetadata.KeyId)
  "$bench" --label coffer-cmk --create --secret-id bench/cmk --kms-key-id "$cmk" \
    --json-out "$out/coffer-cmk.json" --endpoint "$endpoint" \
    --access-key-id "$(banner AWS_ACCESS_KEY_ID)" \
    --secret-access-key "$(banner AWS_SECRET_ACCESS_KEY)" \
    --region "$(banner AWS_REGION)" "${bench_args[@]}"
  echo "== coffer, as an IAM user with policies in force"
  iam create-user --user-name bench-user >/dev/null
  iam put-user-policy --user-name bench-user --policy-name read-bench --policy-document '{
    "Version": "2012-10-17",
    "Statement": [
      {"Sid": "Read", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
       "Resource": "arn:aws:secretsmanager:*:*:secret:bench/*",
       "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}},
      {"Sid": "NoDeleted", "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
       "Condition": {"StringEquals": {"aws:ResourceTag/state": "retired"}}}
    ]}' >/dev/null
  iam create-group --group-name bench-readers >/dev/null
  iam add-user-to-group --group-name bench-readers --user-name bench-user
  iam attach-group-policy --group-name bench-readers --policy-arn arn:aws:iam::aws:policy/ReadOnlyAccess
  read -r user_key user_secret < <(iam create-access-key --user-name bench-user --query 'AccessKey.[AccessKeyId,SecretAccessKey]')
  "$bench" --label coffer-iam-user --json-out "$out/coffer-iam-user.json" \
    --endpoint "$endpoint" --access-key-id "$user_key" --secret-access-key "$user_secret" \
    --region "$(banner AWS_REGION)" "${bench_args[@]}"
else
  echo "(no .venv/bin/aws: run scripts/setup-python to also measure an IAM user with policies in force)"
fi
kill "$coffer_pid"
wait "$coffer_pid" 2>/dev/null || true

if [ "${SKIP_AUDIT_OFF:-0}" != 1 ]; then
  # The same load with the audit trail off: what recording every read costs. Run right after
  # the audited one so both see the same machine.
  echo "== coffer, audit trail off (--no-audit)"
  "$coffer" server --dev --no-audit --listen 127.0.0.1:0 >"$out/coffer-no-audit.log" 2>&1 &
  noaudit_pid=$!
  pids+=("$noaudit_pid")
  for _ in $(seq 1 600); do
    grep -q '^export AWS_REGION=' "$out/coffer-no-audit.log" && break
    sleep 0.1
  done
  nbanner() { sed -n "s/^export $1=//p" "$out/coffer-no-audit.log" | head -n1 | tr -d "\"'"; }
  "$bench" --label coffer-no-audit --create --json-out "$out/coffer-no-audit.json" \
    --endpoint "$(nbanner AWS_ENDPOINT_URL)" \
    --access-key-id "$(nbanner AWS_ACCESS_KEY_ID)" \
    --secret-access-key "$(nbanner AWS_SECRET_ACCESS_KEY)" \
    --region "$(nbanner AWS_REGION)" \
    "${bench_args[@]}"
  kill "$noaudit_pid"
  wait "$noaudit_pid" 2>/dev/null || true
fi

if [ "${SKIP_MOTO:-0}" != 1 ]; then
  echo "== moto_server $moto_version"
  moto=${MOTO_SERVER:-}
  if [ -z "$moto" ] && [ -x "$root/.venv/bin/moto_server" ]; then
    moto="$root/.venv/bin/moto_server"
  fi
  if [ -z "$moto" ]; then
    venv="$out/venv"
    if [ ! -x "$venv/bin/moto_server" ]; then
      echo "(no .venv/bin/moto_server: installing moto[server]==$moto_version into $venv)"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
    fi
    moto="$venv/bin/moto_server"
  fi
  port=$(free_port)
  "$moto" -H 127.0.0.1 -p "$port" >"$out/moto.log" 2>&1 &
  moto_pid=$!
  pids+=("$moto_pid")
  # moto accepts any credentials; its region comes from the signature's scope.
  "$bench" --label moto --create --json-out "$out/moto.json" \
    --endpoint "http://127.0.0.1:$port" \
    --access-key-id testing --secret-access-key testing --region us-east-1 \
    "${bench_args[@]}"
  kill "$moto_pid"
  wait "$moto_pid" 2>/dev/null || true
fi

echo "== results"
python3 - "$out" <<'EOF' | tee "$out/results.txt"
import json, os, sys

out = sys.argv[1]
runs = {}
for label in ("coffer", "coffer-no-audit", "coffer-cmk", "coffer-iam-user", "moto"):
    path = os.path.join(out, f"{label}.json")
    if os.path.exists(path):
        with open(path) as f:
            runs[label] = json.load(f)

rows = [
    ("requests/s", "rps", "{:,.0f}"),
    ("p50 (ms)", "p50_ms", "{:.2f}"),
    ("p90 (ms)", "p90_ms", "{:.2f}"),
    ("p99 (ms)", "p99_ms", "{:.2f}"),
    ("max (ms)", "max_ms", "{:.2f}"),
    ("requests", "requests", "{:,}"),
    ("errors", "errors", "{:,}"),
]
labels = list(runs)
print(f"{'GetSecretValue':<14}" + "".join(f"{l:>17}" for l in labels))
for name, key, fmt in rows:
    print(f"{name:<14}" + "".join(f"{fmt.format(runs[l][key]):>17}" for l in labels))

c = runs.get("coffer")
m = runs.get("moto")
if c:
    print()
    checks = [
        ("throughput >= 25,000 req/s", c["rps"] >= 25000),
        ("p99 < 5 ms", c["p99_ms"] < 5),
        ("no errors", c["errors"] == 0),
    ]
    if m and m["rps"] > 0:
        ratio = c["rps"] / m["rps"]
        print(f"coffer / moto throughput: {ratio:.1f}x")
        checks.append(("throughput >= 30x moto", ratio >= 30))
    n = runs.get("coffer-no-audit")
    if n and n["rps"] > 0:
        cost = 1 - c["rps"] / n["rps"]
        print(f"audit trail on vs off: {-cost * 100:+.1f}% throughput")
        checks.append(("auditing every read costs < 15% throughput", cost < 0.15))
    k = runs.get("coffer-cmk")
    if k:
        change = k["rps"] / c["rps"] - 1
        print(f"customer managed key vs AWS managed key: {change * 100:+.1f}% throughput")
        checks.append(("customer managed key within 10% of the default key", change > -0.10))
        checks.append(("no errors under a customer managed key", k["errors"] == 0))
    u = runs.get("coffer-iam-user")
    if u:
        drop = 1 - u["rps"] / c["rps"]
        print(f"IAM user with policies vs root: {drop * 100:+.1f}% throughput change" if drop < 0 else f"IAM user with policies vs root: -{drop * 100:.1f}% throughput")
        checks.append(("policies in force cost < 20% throughput", drop < 0.20))
        checks.append(("no errors as IAM user", u["errors"] == 0))
    for name, ok in checks:
        print(f"  [{'x' if ok else ' '}] {name}")
EOF
