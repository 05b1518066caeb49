#!/usr/bin/env bash
# What the audit trail costs GetSecretValue: PAIRS rounds, each a fresh `coffer server --dev`
# with the trail on and a fresh one with `--no-audit` (in alternating order), under the same load (release build,
# coffer-bench). Prints every round's throughputs and the on/off ratio, then the median ratio.
# The machine is shared and noisy, so single runs swing by ±15%: read the median.
#
#   bench/audit-cost.sh
#
# Environment (all optional): PAIRS=5, DURATION=8, WARMUP=2, CONNECTIONS=64.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
case $target in /*) ;; *) target="$root/$target" ;; esac
out="$root/bench/out"
mkdir -p "$out"
pairs=${PAIRS:-5}
duration=${DURATION:-8}
warmup=${WARMUP:-2}
connections=${CONNECTIONS:-64}

cargo build --release -p coffer-cli -p coffer-e2e --bin coffer --bin coffer-bench >/dev/null
coffer="$target/release/coffer"
bench="$target/release/coffer-bench"

server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# One measured run against a fresh server started with "$@"; prints requests per second.
measure() {
  local log="$out/audit-cost-server.log"
  "$coffer" server --dev --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^export AWS_REGION=' "$log" && break
    sleep 0.1
  done
  v() { sed -n "s/^export $1=//p" "$log" | head -n1; }
  "$bench" --label audit-cost --create --json-out "$out/audit-cost.json" \
    --endpoint "$(v AWS_ENDPOINT_URL)" --access-key-id "$(v AWS_ACCESS_KEY_ID)" \
    --secret-access-key "$(v AWS_SECRET_ACCESS_KEY)" --region "$(v AWS_REGION)" \
    --connections "$connections" --duration "$duration" --warmup "$warmup" >/dev/null 2>&1
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["rps"]))' "$out/audit-cost.json"
}

ratios=()
printf '%-6s %12s %12s %8s\n' round "on (req/s)" "off (req/s)" "on/off"
for round in $(seq 1 "$pairs"); do
  # Alternate which goes first, so neither side always runs on a machine the other warmed.
  if [ $((round % 2)) = 1 ]; then
    on=$(measure)
    off=$(measure --no-audit)
  else
    off=$(measure --no-audit)
    on=$(measure)
  fi
  ratio=$(python3 -c "print(f'{$on / $off:.3f}')")
  ratios+=("$ratio")
  printf '%-6s %12s %12s %8s\n' "$round" "$on" "$off" "$ratio"
done
python3 - "${ratios[@]}" <<'EOF'
import statistics, sys
r = sorted(float(x) for x in sys.argv[1:])
m = statistics.median(r)
print(f"median on/off: {m:.3f} ({(m - 1) * 100:+.1f}% throughput with the audit trail on); range {r[0]:.3f}-{r[-1]:.3f}")
EOF
