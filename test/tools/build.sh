#!/usr/bin/env bash
# Builds the programs warren's tests run as real local processes (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the
# sealed-secrets controller, controller-gen) from the Go module proxy into a
# versioned cache outside the repository. A second run with the same wrapper
# modules rebuilds nothing.
#
#   build.sh            build what is missing, print progress, then the directory
#   build.sh --dir      print the cache directory only (no build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# name | wrapper module dir | package | ldflags
tools=(
  "etcd|etcd|go.etcd.io/etcd/server/v3|"
  "kube-apiserver|kubernetes|k8s.io/kubernetes/cmd/kube-apiserver|k8s"
  "kube-controller-manager|kubernetes|k8s.io/kubernetes/cmd/kube-controller-manager|k8s"
  "kube-scheduler|kubernetes|k8s.io/kubernetes/cmd/kube-scheduler|k8s"
  "kwok|kwok|sigs.k8s.io/kwok/cmd/kwok|"
)
if [ -d "$here/controller-gen" ]; then tools+=("controller-gen|controller-gen|sigs.k8s.io/controller-tools/cmd/controller-gen|"); fi
if [ -d "$here/sealed-secrets" ]; then tools+=("sealed-secrets-controller|sealed-secrets|github.com/bitnami-labs/sealed-secrets/cmd/controller|"); fi

# Bump when a change to this script changes what ends up in the cache.
recipe=2
# The cache key is a hash of the recipe and every wrapper module, so a new
# version of any tool lands in a fresh directory.
key=$(cd "$here" && { echo "recipe $recipe"; cat $(find . -name go.mod -o -name go.sum | sort); } | sha256sum | cut -c1-12)
dir="${WARREN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/warren/tools/$key}"

if [ "${1:-}" = "--dir" ]; then
  echo "$dir"
  exit 0
fi

module_version() { # wrapper dir, module path
  (cd "$here/$1" && go list -m -f '{{.Version}}' "$2")
}

ldflags_for() {
  case "$1" in
  k8s)
    local v
    v=$(module_version kubernetes k8s.io/kubernetes)
    local minor=${v#v1.}
    minor=${minor%%.*}
    local pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
        "$pkg" "$v" "$pkg" "$pkg" "$minor" "$pkg"
    done
    ;;
  esac
}

# kwok refuses to start without stages; use the ones its own module ships:
# node initialize, node heartbeat with lease, pod ready, complete and delete,
# and volume provisioning, binding and deletion (for PVCs of the kwok-volume
# StorageClass, which the local planes make their default).
copy_kwok_stages() {
  local src
  src=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  local f out="$dir/kwok-stages.yaml.tmp"
  : >"$out"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
    volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml; do
    printf -- '---\n' >>"$out"
    cat "$src/$f" >>"$out"
  done
  mv "$out" "$dir/kwok-stages.yaml"
  cp "$src/volume/fast/storage-class.yaml" "$dir/kwok-storage-class.yaml"
}

# The sealed-secrets controller does not install its CRD; tests apply the one
# its own module ships, kept beside the binary so it always matches it.
copy_sealed_secrets_crd() {
  local src
  src=$(cd "$here/sealed-secrets" && go list -m -f '{{.Dir}}' github.com/bitnami-labs/sealed-secrets)/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml
  cp "$src" "$dir/sealed-secrets-crd.yaml.tmp"
  chmod 0644 "$dir/sealed-secrets-crd.yaml.tmp"
  mv "$dir/sealed-secrets-crd.yaml.tmp" "$dir/sealed-secrets-crd.yaml"
}

mkdir -p "$dir"
# One build at a time per cache dir: a second `make tools` waits for the first.
exec 9>"$dir/.lock"
if ! flock -n 9; then
  echo "another build of the tools is running into $dir; waiting for it" >&2
  flock 9
fi
missing=()
for t in "${tools[@]}"; do
  IFS='|' read -r name _ _ _ <<<"$t"
  [ -x "$dir/$name" ] || missing+=("$t")
  if [ "$name" = kwok ] && [ -x "$dir/$name" ] && { [ ! -f "$dir/kwok-stages.yaml" ] || [ ! -f "$dir/kwok-storage-class.yaml" ]; }; then copy_kwok_stages; fi
  if [ "$name" = sealed-secrets-controller ] && [ -x "$dir/$name" ] && [ ! -f "$dir/sealed-secrets-crd.yaml" ]; then copy_sealed_secrets_crd; fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "tools up to date in $dir" >&2
  echo "$dir"
  exit 0
fi

echo "building ${#missing[@]} tool(s) into $dir" >&2
echo "(a cold build takes several minutes on 2 cores; progress follows)" >&2
i=0
for t in "${missing[@]}"; do
  i=$((i + 1))
  IFS='|' read -r name mod pkg flags <<<"$t"
  start=$(date +%s)
  echo "[$i/${#missing[@]}] $name ($pkg) ..." >&2
  # Print a heartbeat while the compiler works, so a person sees progress.
  (while sleep 30; do echo "  ... still building $name ($(($(date +%s) - start))s)" >&2; done) &
  beat=$!
  status=0
  (cd "$here/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$(ldflags_for "$flags")" -o "$dir/$name.tmp" "$pkg") || status=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  if [ $status -ne 0 ]; then
    echo "building $name failed (exit $status)" >&2
    rm -f "$dir/$name.tmp"
    exit $status
  fi
  mv "$dir/$name.tmp" "$dir/$name"
  if [ "$name" = kwok ]; then copy_kwok_stages; fi
  if [ "$name" = sealed-secrets-controller ]; then copy_sealed_secrets_crd; fi
  echo "  done in $(($(date +%s) - start))s" >&2
done
echo "$dir"
