#!/usr/bin/env bash
# Builds the image (build.sh), loads it into podman and checks it works:
# "auditq serve" in a container (embedded NATS, the local PostgreSQL) turns
# /readyz 200; "auditq publish" from the same image stores an event; SIGTERM
# stops the service with exit code 0.
#
# Needs podman and runc (Debian packages; runc because crun refuses the
# hybrid cgroup hierarchy of some machines) and PostgreSQL on
# 127.0.0.1:5432 that lets user postgres create a database.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
name=auditq-oci-test-$$
db=auditq_oci_test_$$
image=localhost/auditq:oci-test-$$
cleanup() {
	podman rm -f "$name" >/dev/null 2>&1 || true
	podman rmi -f "$image" >/dev/null 2>&1 || true
	psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

deploy/oci/build.sh "$work/auditq.tar"
loaded=$(podman load -q -i "$work/auditq.tar" | sed -n 's/^Loaded image: //p')
podman tag "$loaded" "$image"
podman rmi "$loaded" >/dev/null

# runc: see above. Explicit ulimits: podman's defaults raise limits, which a
# container host without CAP_SYS_RESOURCE refuses. Host network, and ports
# the service picks itself (it logs them).
run=(podman --runtime runc run --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
"${run[@]}" -d --name "$name" --tmpfs /data \
	-e AUDITQ_DATA_DIR=/data \
	-e "AUDITQ_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" \
	-e AUDITQ_NATS_LISTEN=127.0.0.1:-1 \
	-e AUDITQ_NATS_WEBSOCKET=127.0.0.1:-1 \
	-e AUDITQ_HTTP_ADDR=127.0.0.1:0 \
	-e AUDITQ_LOG_FORMAT=json \
	"$image" serve >/dev/null

running=""
for _ in $(seq 1 120); do
	running=$(podman logs "$name" 2>&1 | grep '"msg":"auditq running"' || true)
	[ -n "$running" ] && break
	[ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || break
	sleep 0.5
done
if [ -z "$running" ]; then
	podman logs "$name" 2>&1 | tail -20
	echo "FAIL: auditq serve did not start in the container" >&2
	exit 1
fi
http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' <<<"$running")
nats=$(sed -n 's/.*"nats":"\([^"]*\)".*/\1/p' <<<"$running")

code=$(curl -s -o "$work/readyz" -w '%{http_code}' "http://$http/readyz")
if [ "$code" != 200 ]; then
	echo "FAIL: /readyz answered $code: $(cat "$work/readyz")" >&2
	exit 1
fi
echo "ok: /readyz 200 $(cat "$work/readyz")"

"${run[@]}" --rm -e "AUDITQ_NATS_URL=$nats" "$image" publish
rows=0
for _ in $(seq 1 50); do
	rows=$(psql -h 127.0.0.1 -U postgres -d "$db" -tAc "SELECT count(*) FROM audit_logs")
	[ "$rows" = 1 ] && break
	sleep 0.2
done
if [ "$rows" != 1 ]; then
	echo "FAIL: audit_logs holds $rows rows after one publish, want 1" >&2
	exit 1
fi
echo "ok: the published event is in audit_logs"

podman stop -t 40 "$name" >/dev/null
exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
if [ "$exit_code" != 0 ]; then
	podman logs "$name" 2>&1 | tail -20
	echo "FAIL: auditq serve exited with $exit_code after SIGTERM, want 0" >&2
	exit 1
fi
echo "ok: SIGTERM, exit code 0"
echo "PASS: OCI image built, started and probed"
