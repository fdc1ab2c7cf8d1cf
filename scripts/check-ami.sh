#!/usr/bin/env bash
# check-ami.sh: validates the worker image's Packer template (ami/worker.pkr.hcl)
# with `packer fmt -check` and `packer validate`, as `make test` does.
#
# Installs Debian's packer package (1.6.6) when packer is missing and this runs
# as root with apt-get; otherwise it fails, saying how to get it. The template is validated in
# full against a stand-in bundle (validation checks that the uploaded files
# exist, not what they hold: infra/deploy's tests check the real bundle);
# packer 1.6.6 needs no AWS credentials for that. Where a newer packer would
# need them, or lacks the amazon plugin, the check falls back to
# `packer validate -syntax-only` and says so.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
template="$root/ami/worker.pkr.hcl"

log() { echo "check-ami: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

if ! command -v packer >/dev/null; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "packer not found: installing Debian's packer package"
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y -qq packer >&2; then
			apt-get update -qq >&2 && apt-get install -y -qq packer >&2 || true
		fi
	fi
fi
if ! command -v packer >/dev/null; then
	how="install it: sudo apt-get install packer (Debian), or see https://developer.hashicorp.com/packer/install"
	die "packer not found; $how"
fi
log "$(packer version | head -n 1)"

packer fmt -check -diff "$template" >&2 || die "$template is not formatted: run packer fmt $template"

bundle="$(mktemp -d)"
trap 'rm -rf "$bundle"' EXIT
: >"$bundle/worker"
: >"$bundle/models.tar.gz"
(cd "$bundle" && sha256sum worker models.tar.gz >SHA256SUMS)

if out="$(packer validate -var "bundle_dir=$bundle" "$template" 2>&1)"; then
	log "packer validate: ok"
	exit 0
fi
if grep -qiE 'credential|plugin|unknown source type|not installed' <<<"$out"; then
	log "packer validate needs what this machine lacks (AWS credentials or the amazon plugin):"
	log "$out"
	packer validate -syntax-only -var "bundle_dir=$bundle" "$template" >&2 || die "packer validate -syntax-only failed"
	log "packer validate -syntax-only: ok"
	exit 0
fi
echo "$out" >&2
die "packer validate $template failed"
