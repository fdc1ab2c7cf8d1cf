package deploy

// scriptTemplates are the scripts' text/template definitions: "web" and
// "worker" (user data), "provision" (ami/provision.sh) and the parts they
// share. Paths come from the functions of the template's FuncMap; every
// value from a configuration is quoted with q.
const scriptTemplates = `
{{- define "common"}}
# ELASTIQ_TEST_ROOT: the tests run this script against a scratch folder with
# stub commands first on PATH; on an instance it is unset and files go to /.
root="${ELASTIQ_TEST_ROOT:-}"

log() { echo "elastiq-setup: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# verify FILE SHA256: FILE has this SHA-256.
verify() {
	local got
	got="$(sha256sum "$1" | cut -d' ' -f1)"
	[[ "$got" == "$2" ]] || die "$1: SHA-256 $got, want $2"
}

# ensure_user: the system user the elastiq services run as.
ensure_user() {
	if ! id -u {{user}} >/dev/null 2>&1; then
		useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /sbin/nologin {{user}}
	fi
}
{{- end}}

{{- define "fetch"}}

# fetch KEY SHA256 DEST MODE: s3://$bucket/KEY to DEST, verified, with the
# instance profile's credentials. The object may still be uploading while
# the instance boots: retry for five minutes.
fetch() {
	local key="$1" sum="$2" dest="$3" mode="$4" tmp attempt
	tmp="$(mktemp)"
	for ((attempt = 1; ; attempt++)); do
		if aws s3 cp --only-show-errors --region "$region" "s3://$bucket/$key" "$tmp"; then
			break
		fi
		((attempt < 30)) || die "s3://$bucket/$key: not fetched in $attempt attempts"
		log "s3://$bucket/$key: attempt $attempt failed; retrying in 10 s"
		sleep 10
	done
	verify "$tmp" "$sum"
	install -D -m "$mode" "$tmp" "$dest"
	rm -f "$tmp"
}
{{- end}}

{{- define "install_models"}}

# install_models TARBALL: ONNX Runtime, the face models and the gallery
# (the bundle's models.tar.gz) into {{optDir}}.
install_models() {
	command -v tar >/dev/null || dnf install -y tar
	rm -rf "$root{{modelsDir}}" "$root{{galleryDir}}"
	install -d -m 0755 "$root{{optDir}}"
	tar -xzf "$1" -C "$root{{optDir}}" --no-same-owner
	[[ -f "$root{{modelsDir}}/{{runtimeLib}}" && -d "$root{{galleryDir}}" ]] ||
		die "$1: no models/{{runtimeLib}} or gallery/ in it"
}
{{- end}}

{{- define "files"}}
{{- range .Files}}

install -d -m 0755 "$root"{{q (dir .Path)}}
cat >"$root"{{q .Path}} <<'{{heredoc}}'
{{.Text}}{{heredoc}}
chmod {{.Mode}} "$root"{{q .Path}}
{{- end}}
{{- end}}

{{- define "web"}}{{template "host" .}}{{end}}

{{- define "scaler"}}{{template "host" .}}{{end}}

{{- define "host"}}#!/bin/bash
# User data of the {{.Role}} instance of elastiq stack {{.C.StackName}} (Amazon
# Linux 2023): {{.About}}.
# Rendered by github.com/elastiq/elastiq/infra/deploy. cloud-init runs it once,
# as root, at first boot; its output is in /var/log/cloud-init-output.log.
set -euo pipefail
umask 022
{{template "common" .}}

bucket={{q .C.Bucket}}
region={{q .C.Region}}
{{- template "fetch"}}

{{- if .LocalMemcached}}
log "installing memcached"
dnf install -y memcached
{{- end}}
ensure_user
{{- range .Fetch}}
fetch {{q .Object.Key}} {{q .Object.SHA256}} "$root"{{q .Dest}} 0755
{{- end}}
{{- template "files" .}}

systemctl daemon-reload
systemctl enable --now {{join .Services " "}}

log "waiting for the {{.Await.What}} to answer on port {{.Await.Port}}"
for ((i = 0; i < 60; i++)); do
	if curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:{{.Await.Port}}/healthz; then
		log "done: the {{.Await.What}} answers on port {{.Await.Port}}"
		exit 0
	fi
	sleep 2
done
journalctl --no-pager -n 50 -u {{.Await.Service}} >&2 || true
die "the {{.Await.What}} did not answer /healthz within 2 minutes"
{{end}}

{{- define "worker"}}#!/bin/bash
# User data of an elastiq worker instance ({{if .C.BakedImage}}the worker image built by ami/{{else}}Amazon Linux 2023{{end}}):
# {{if not .C.BakedImage}}installs the worker, ONNX Runtime, the models and the gallery from S3, {{end}}configures
# the worker and starts it (it stops this instance when idle; the scaler starts it again).
# Rendered by github.com/elastiq/elastiq/infra/deploy. cloud-init runs it once,
# as root, at first boot; its output is in /var/log/cloud-init-output.log.
set -euo pipefail
umask 022
{{template "common" .}}
{{- if .C.BakedImage}}

[[ -x "$root{{workerBin}}" && -f "$root{{workerUnit}}" ]] ||
	die "this image has no elastiq worker: launch the image built by ami/, or render the user data without BakedImage"
{{- else}}

bucket={{q .C.Bucket}}
region={{q .C.Region}}
{{- template "fetch"}}
{{- template "install_models"}}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ensure_user
fetch {{q .C.Worker.Key}} {{q .C.Worker.SHA256}} "$root"{{q workerBin}} 0755
fetch {{q .C.Models.Key}} {{q .C.Models.SHA256}} "$work/models.tar.gz" 0644
install_models "$work/models.tar.gz"
{{- end}}
{{- template "files" .}}

systemctl daemon-reload
systemctl enable --now {{workerService}}
log "done: {{workerService}} started"
{{end}}

{{- define "provision"}}#!/bin/bash
# ami/provision.sh: installs the elastiq worker into the image Packer builds
# (ami/worker.pkr.hcl) from the bundle folder it uploaded ($1, default
# {{uploadDir}}): worker, models.tar.gz and SHA256SUMS (from
# infra/deploy's Build) and elastiq-worker.service (ami/). The unit is
# installed but not enabled: a worker's user data (infra/deploy,
# BakedImage) writes {{etcDir}}/worker.env, then enables and starts it.
#
# GENERATED by infra/deploy (ProvisionScript): do not edit. Run
# "go generate ./infra/deploy" to rewrite it; its tests fail while it differs.
set -euo pipefail
umask 022
bundle="${1:-{{uploadDir}}}"
{{template "common" .}}
{{- template "install_models"}}

# sum_of NAME: NAME's SHA-256 as the bundle's SHA256SUMS lists it.
sum_of() {
	local sum
	sum="$(awk -v name="$1" '$2 == name { print $1 }' "$bundle/SHA256SUMS")"
	[[ -n "$sum" ]] || die "$bundle/SHA256SUMS lists no $1"
	echo "$sum"
}

sum="$(sum_of worker)"
verify "$bundle/worker" "$sum"
sum="$(sum_of models.tar.gz)"
verify "$bundle/models.tar.gz" "$sum"
# The unit this script was rendered with.
verify "$bundle/{{.Unit.Name}}" {{q .UnitSum}}

ensure_user
install -D -m 0755 "$bundle/worker" "$root{{workerBin}}"
install_models "$bundle/models.tar.gz"
install -D -m 0644 "$bundle/{{.Unit.Name}}" "$root{{workerUnit}}"
install -d -m 0755 "$root{{etcDir}}"
systemd-analyze verify "$root{{workerUnit}}"
log "done: the worker is installed; {{workerService}} is not enabled"
{{end}}
`
