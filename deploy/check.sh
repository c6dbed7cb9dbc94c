#!/usr/bin/env bash
# Checks the deployment files (CI runs it from .ci/run):
#   - deploy/systemd/auditq.service with its drop-in signing-key.conf:
#     systemd-analyze verify (any warning fails) and systemd-analyze
#     security --offline, exposure at most 2.0 (--threshold is in tenths);
#   - deploy/nats/*.conf and the nats.conf of deploy/kubernetes/nats.yaml:
#     nats-server -t, with the nats-server of go.mod;
#   - deploy/kubernetes: kube-score (pinned, through the Go module proxy),
#     every warning and critical finding fails; kubectl kustomize renders
#     the kustomization when kubectl is installed;
#   - deploy/oci/test.sh (the OCI image built, started and probed) when
#     podman and runc are installed, else it says it skipped.
# Needs: systemd-analyze (Debian package systemd), Go.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kube_score_version=v1.20.0

echo "== systemd unit"
# verify resolves ExecStart and the units it depends on: give it a root
# with the binary at its installed path and the system's unit files.
root=$tmp/root
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
go build -o "$root/usr/local/bin/auditq" .
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp deploy/systemd/auditq.service "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/auditq.service.d"
cp deploy/systemd/signing-key.conf "$root/etc/systemd/system/auditq.service.d/"
verify=$(systemd-analyze verify --root="$root" auditq.service 2>&1) || {
	echo "$verify"
	exit 1
}
if [ -n "$verify" ]; then
	echo "$verify"
	echo "FAIL: systemd-analyze verify warned about deploy/systemd/auditq.service" >&2
	exit 1
fi
systemd-analyze security --offline=yes --root="$root" --threshold=20 auditq.service | tail -n1

echo "== NATS configurations"
go build -o "$tmp/nats-server" github.com/nats-io/nats-server/v2
# auditq-external.conf includes the auditq-service.conf an operator
# writes (the public key of auditq's seed): checked beside one with an
# example public key, which is no secret.
mkdir "$tmp/nats"
cp deploy/nats/*.conf "$tmp/nats/"
echo 'AUDITQ_SERVICE_NKEY: UA6QMIATJ4LSI47B2QDCBMDOWKPAZX3JN65YBTT5YOHWBNLZMGW4QWLY' >"$tmp/nats/auditq-service.conf"
for conf in deploy/nats/*.conf; do
	"$tmp/nats-server" -t -c "$tmp/nats/$(basename "$conf")"
done
# The ConfigMap's nats.conf: the block under "nats.conf: |", unindented.
awk '/^  nats.conf: \|/ {on=1; next} on && /^    / {print substr($0, 5); next} on && /^$/ {print; next} on {exit}' \
	deploy/kubernetes/nats.yaml >"$tmp/k8s-nats.conf"
POD_NAME=nats-0 "$tmp/nats-server" -t -c "$tmp/k8s-nats.conf"

echo "== Kubernetes manifests"
manifests=(deploy/kubernetes/namespace.yaml deploy/kubernetes/nats.yaml deploy/kubernetes/auditq.yaml)
if command -v kubectl >/dev/null; then
	kubectl kustomize deploy/kubernetes >"$tmp/rendered.yaml"
	manifests=("$tmp/rendered.yaml")
	echo "kubectl kustomize: rendered"
else
	echo "kubectl not installed: kube-score reads the manifests without the kustomization"
fi
GOFLAGS=-mod=mod GOBIN="$tmp/bin" go install "github.com/zegl/kube-score/cmd/kube-score@$kube_score_version"
"$tmp/bin/kube-score" score --output-format ci "${manifests[@]}" >"$tmp/kube-score.txt" || true
if grep -E '^\[(WARNING|CRITICAL)\]' "$tmp/kube-score.txt"; then
	echo "FAIL: kube-score found problems in deploy/kubernetes" >&2
	exit 1
fi
if ! grep -q '^\[OK\]' "$tmp/kube-score.txt"; then
	cat "$tmp/kube-score.txt"
	echo "FAIL: kube-score checked nothing" >&2
	exit 1
fi
echo "kube-score: $(grep -c '^\[OK\]' "$tmp/kube-score.txt") checks OK"

echo "== OCI image"
if command -v podman >/dev/null && command -v runc >/dev/null; then
	deploy/oci/test.sh
else
	echo "skipped: podman and runc are not installed (apt-get install podman runc)"
fi
echo "deploy/check.sh: all checks passed"
