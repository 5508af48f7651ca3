#!/usr/bin/env bash
# Installs AWS's Lambda runtime interface client for Node.js (aws-lambda-ric, the client the managed
# Node.js runtimes are built on) into DIR and builds its native addon (curl + aws-lambda-cpp + a
# Node-API module: g++, cmake and make, a few minutes), for test/runtime/ric-bundle.test.ts:
#
#   bash test/runtime/install-ric.sh /tmp/ric && RIC_DIR=/tmp/ric npx vitest run test/runtime
#
# The addon is Node-API, so one build loads under Node 20 and 24 alike. node-gyp builds against the
# headers at npm_config_nodedir (these machines' npm config points it at /usr, Node 20's); it can't
# download any here. A DIR that already holds a working build is kept as it is.
set -euo pipefail
dir="${1:?usage: install-ric.sh DIR}"
version="${RIC_VERSION:-4.0.2}"
pkg="$dir/node_modules/aws-lambda-ric"

loads() {
  [ -f "$pkg/rapid-client.node" ] && [ "$(node -p 'require(process.argv[1]).version' "$pkg/package.json" 2>/dev/null)" = "$version" ] &&
    AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 node -e 'require(process.argv[1])' "$pkg/rapid-client.node" 2>/dev/null
}
if loads; then
  echo "aws-lambda-ric $version: already built in $dir"
  exit 0
fi

mkdir -p "$dir"
rm -rf "$dir/node_modules" "$dir/package.json" "$dir/package-lock.json"
(cd "$dir" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error "aws-lambda-ric@$version" >/dev/null)
# npm's policy on install scripts varies by version: run the package's own two build steps explicitly.
started=$SECONDS
if ! (cd "$pkg" && ./scripts/preinstall.sh && ./scripts/postinstall.sh) >"$dir/build.log" 2>&1; then
  tail -40 "$dir/build.log" >&2
  echo "aws-lambda-ric $version: native build failed (full log: $dir/build.log)" >&2
  exit 1
fi
if ! loads; then
  echo "aws-lambda-ric $version: built, but rapid-client.node does not load" >&2
  exit 1
fi
echo "aws-lambda-ric $version: built in $((SECONDS - started)) s into $dir"
