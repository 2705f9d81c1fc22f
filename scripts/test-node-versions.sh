#!/usr/bin/env bash
# Runs the tests that can differ between Node releases on each extra Node major (22 and 24; the
# machine's own node, 20, is the floor and runs the whole suite through `npm test`). For each
# version, with that binary first on PATH:
#   1. `node --version` is the pinned binary's version;
#   2. smoke: every public entry of dist/ loads through `import` and through `require` (by the
#      package's own name, so through package.json#exports), and zod, p-retry, eventemitter3 and
#      Web streams do their job inside the bundles;
#   3. the core unit tests and the package tests (test/core, test/package) under vitest;
#   4. the local provider's conformance suite (test/adapters/local.test.ts).
# vitest is started by that node binary itself, so its workers (forked from process.execPath)
# run on it too. Binaries come from scripts/setup-node-versions.sh (run here; quick when cached).
# Builds dist/ first when it is missing or older than the sources, and checks the local
# provider's system packages (scripts/setup-local.sh), as `npm test` does.
# `SANDPORT_NODE_MAJORS="24"` limits the run to some majors. Exits non-zero if any check failed.
set -uo pipefail
cd "$(dirname "$0")/.."

read -r -a majors <<<"${SANDPORT_NODE_MAJORS:-22 24}"
log_dir=$(mktemp -d "${TMPDIR:-/tmp}/sandport-node-versions.XXXXXX")
trap 'rm -rf "$log_dir"' EXIT

build_is_stale() {
  [ -f dist/index.js ] && [ -f dist/index.cjs ] || return 0
  [ -n "$(find src adapters tsup.config.ts package.json -newer dist/index.js -type f -print -quit)" ]
}
# The local conformance suite needs bubblewrap and friends (quick and silent when present).
bash scripts/setup-local.sh --quiet || exit 1
if build_is_stale; then
  echo "node-versions: building dist/ with $(node --version)"
  npm run build --silent || { echo "node-versions: the build failed" >&2; exit 1; }
fi

# One body for both module formats: `load` is `import()` in the ESM run and `require` in the CJS
# run. Each check throws with what it saw, so a failure names itself.
smoke_body='
const entries = ["sandport", "sandport/kit", "sandport/testing", "sandport/local", "sandport/docker", "sandport/modal"];
const check = (ok, what) => { if (!ok) throw new Error(`smoke (${format}): ${what}`); };
async function main() {
  const mods = {};
  for (const entry of entries) {
    mods[entry] = await load(entry);
    check(Object.keys(mods[entry]).length > 0, `${entry} exports nothing`);
  }
  const root = mods["sandport"];
  const kit = mods["sandport/kit"];
  const bytes = new TextEncoder().encode("h\u00e9llo");
  const text = await root.readText(new ReadableStream({ start(c) { c.enqueue(bytes.slice(0, 2)); c.enqueue(bytes.slice(2)); c.close(); } }));
  check(text === "h\u00e9llo", `readText gave ${JSON.stringify(text)}`);
  // zod: a bad create option is refused before any I/O.
  const provider = mods["sandport/local"].createLocalSandboxProvider();
  const refused = await provider.create({ timeoutMs: -1 }).then(() => undefined, (error) => error);
  check(root.SandboxInvalidArgumentError.isInstance(refused), `create({ timeoutMs: -1 }) gave ${refused}`);
  // p-retry (bundled into the CJS build) and eventemitter3: one transient failure, one retry event.
  const events = new kit.SandboxEmitter();
  let retryEvents = 0;
  events.on("retry", () => { retryEvents += 1; });
  let calls = 0;
  const value = await kit.retryIdempotent("smoke", async () => {
    calls += 1;
    if (calls === 1) throw new kit.SandboxProviderError({ message: "transient", provider: "smoke", retryable: true });
    return 42;
  }, { provider: "smoke", events });
  check(value === 42 && calls === 2 && retryEvents === 1, `retryIdempotent: value ${value}, ${calls} calls, ${retryEvents} retry events`);
  console.log(`smoke (${format}): ${entries.length} entries loaded on node ${process.version}`);
}
main().catch((error) => { console.error(error); process.exit(1); });
'

total_passed=0
total_failed=0
summaries=()

# Runs one named check; its output goes to the terminal and to $log_dir/<version>-<name>.log.
run_check() {
  local name="$1"
  shift
  echo "node-versions: [$version] $name"
  if "$@" 2>&1 | tee "$log_dir/$version-$name.log"; then
    total_passed=$((total_passed + 1))
    results+=("$name ok$(test_count "$name")")
    return 0
  fi
  total_failed=$((total_failed + 1))
  failed+=("$name")
  results+=("$name FAILED")
  return 1
}

# vitest's closing "Tests  N passed (N)" line, shortened, for the summary.
test_count() {
  local line
  line=$(sed -E 's/\x1b\[[0-9;]*m//g' "$log_dir/$version-$1.log" 2>/dev/null | grep -E '^ +Tests +[0-9]' | tail -n 1 | sed -E 's/^ +Tests +//')
  [ -z "$line" ] || echo " ($line)"
}

check_version() {
  local got
  got=$(node --version)
  echo "$(command -v node): $got"
  [ "$(command -v node)" = "$node_bin" ] && [[ "$got" == "v$major."* ]]
}

vitest() { "$node_bin" node_modules/vitest/vitest.mjs run --maxWorkers=1 "$@"; }

machine_path=$PATH
for major in "${majors[@]}"; do
  results=()
  failed=()
  version="$major"
  started=$SECONDS
  if ! node_bin=$(bash scripts/setup-node-versions.sh --print-path "$major"); then
    total_failed=$((total_failed + 1))
    summaries+=("node-versions: node $major FAILED: scripts/setup-node-versions.sh could not install it")
    continue
  fi
  PATH="$(dirname "$node_bin"):$machine_path"
  if run_check version check_version; then
    version=$(node --version)
    run_check smoke-esm "$node_bin" --input-type=module -e "const format = 'esm'; const load = (s) => import(s); $smoke_body"
    run_check smoke-cjs "$node_bin" --input-type=commonjs -e "const format = 'cjs'; const load = async (s) => require(s); $smoke_body"
    run_check unit+package vitest test/core test/package
    run_check local-conformance vitest test/adapters/local.test.ts
  fi
  PATH=$machine_path
  status=PASSED
  [ ${#failed[@]} -eq 0 ] || status="FAILED (${failed[*]})"
  summaries+=("node-versions: node $version $status in $((SECONDS - started))s: $(IFS=';'; echo "${results[*]}" | sed 's/;/, /g')")
done

echo
printf '%s\n' "${summaries[@]}"
echo "node-versions: ${total_passed} passed, ${total_failed} failed"
[ "$total_failed" -eq 0 ]
