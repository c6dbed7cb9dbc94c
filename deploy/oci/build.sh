#!/usr/bin/env bash
# Builds the auditq OCI image with ko, without a Docker daemon and without
# pulling anything: the base is an empty image (the binary is static; time
# zones are compiled in) that this script writes as an OCI layout into ko's
# cache, so ko finds it by digest there. The image runs as user 65532:65532
# with entrypoint /ko-app/auditq; pass "serve" (or another command) as its
# argument.
#
#   deploy/oci/build.sh [OUT.tar]     default bin/auditq-image.tar
#
# OUT.tar is a "docker save" tarball: podman load -i OUT.tar, or
# skopeo copy docker-archive:OUT.tar docker://REGISTRY/auditq:TAG.
# ko (pinned below) comes through the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bin/auditq-image.tar}
ko_version=v0.19.1
arch=$(go env GOARCH)

cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
layout=$cache/img
mkdir -p "$layout/blobs/sha256"

# blob FILE: stores FILE as a blob of the layout, prints its digest and size.
blob() {
	local sum size
	sum=$(sha256sum "$1" | cut -d' ' -f1)
	size=$(stat -c %s "$1")
	mv "$1" "$layout/blobs/sha256/$sum"
	echo "sha256:$sum $size"
}

printf '{"architecture":"%s","os":"linux","config":{"User":"65532:65532","WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":[]}}' \
	"$arch" >"$cache/config"
read -r config_digest config_size < <(blob "$cache/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[]}' \
	"$config_digest" "$config_size" >"$cache/manifest"
read -r base_digest base_size < <(blob "$cache/manifest")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s}]}' \
	"$base_digest" "$base_size" >"$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

mkdir -p "$(dirname "$out")"
KOCACHE=$cache \
	KO_CONFIG_PATH=deploy/oci/.ko.yaml \
	KO_DOCKER_REPO=auditq \
	KO_DEFAULTBASEIMAGE="localhost/empty@$base_digest" \
	go run "github.com/google/ko@$ko_version" build --bare --push=false \
	--platform="linux/$arch" --tarball="$out" .
echo "image written to $out"
