#!/bin/bash
# Two studios on one machine: this one (port 8430) hands a job to a peer (port 8431) as provider `peer`.
# What docs/providers.md shows was printed by this script. Needs `tunelab` on PATH (the project's venv).
set -u
D=${DEMO_DIR:-/tmp/provdemo}
rm -rf "$D/a" "$D/peer"; mkdir -p "$D/a" "$D/peer"
export HF_HUB_OFFLINE=1 TUNELAB_OFFLINE=1
[ -d "$D/tiny" ] || python -c "from tunelab.testing import build_tiny_model; build_tiny_model('$D/tiny')"
python -c "import json; json.dump([{'instruction': f'Say the number {i}.', 'input': '', 'output': f'The number is {i}.'}
                                   for i in range(24)], open('$D/numbers.json', 'w'))"
TOKEN=$(TUNELAB_HOME=$D/peer tunelab tokens create studio-a --scope admin 2>/dev/null | tail -1)
TUNELAB_HOME=$D/peer TUNELAB_REQUIRE_TOKEN=1 TUNELAB_ALLOW_SERVER_PATHS="[\"$D\"]" \
  tunelab serve --port 8431 --log-level warning > "$D/peer.log" 2>&1 &
PEER=$!
export TUNELAB_HOME=$D/a TUNELAB_ALLOW_SERVER_PATHS="[\"$D\"]" TUNELAB_URL=http://127.0.0.1:8430
export TUNELAB_PROVIDER_PEER_URL=http://127.0.0.1:8431 TUNELAB_PROVIDER_PEER_KIND=tunelab TUNELAB_PROVIDER_PEER_KEY=$TOKEN
export TUNELAB_PROVIDERS='{"peer": {"poll_s": 1}, "openai": {"url": "https://api.openai.com/v1"}}'
serve() {
  tunelab serve --port 8430 --log-level warning >> "$D/a.log" 2>&1 &
  STUDIO=$!
  for p in 8430 8431; do for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$p/api/health" >/dev/null && break; sleep 0.5; done; done
}
wait_end() {
  for _ in $(seq 1 600); do
    S=$(curl -s "$TUNELAB_URL/api/jobs/$1" | python -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case $S in completed|failed|cancelled) echo "status: $S"; return;; esac; sleep 1
  done
}
serve
echo '$ tunelab providers'; tunelab providers
echo '$ tunelab jobs create --provider elsewhere ...'
tunelab jobs create --provider elsewhere --model "$D/tiny" --dataset "$D/numbers.json"
echo '$ tunelab jobs create --provider peer ...'
JOB=$(tunelab jobs create --provider peer --name "numbers on peer" --model "$D/tiny" --dataset "$D/numbers.json" \
      --set max_steps=4 --set save_steps=2 --set batch_size=2 --set max_length=96 --set output.evaluate=false)
echo "$JOB"; wait_end "$JOB"
echo "\$ tunelab jobs logs $JOB --all"; tunelab jobs logs "$JOB" --all
echo "\$ tunelab jobs show $JOB"; tunelab jobs show "$JOB"
kill $STUDIO; wait $STUDIO 2>/dev/null
export TUNELAB_PROVIDER_PEER_KEY=tl_not-the-token  # the same studio with a wrong token for the peer
serve
BAD=$(tunelab jobs create --provider peer --name "wrong token" --model "$D/tiny" --dataset "$D/numbers.json" --set max_steps=2)
wait_end "$BAD"
echo "\$ curl -s \$TUNELAB_URL/api/jobs/$BAD"; curl -s "$TUNELAB_URL/api/jobs/$BAD"; echo
kill $STUDIO $PEER; wait 2>/dev/null
