#!/usr/bin/env bash
# Installs what the tests need, builds, checks types and lint, and runs every test
# (unit, integration against real dockerd/registry/HAProxy, end to end).
# Ends with one line: "tests: N passed, N failed, N skipped", counted by vitest itself.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }

status=0
npm run --silent typecheck || status=1
npm run --silent lint || status=1

mkdir -p .test-artifacts
rm -f .test-artifacts/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=.test-artifacts/vitest.json "$@"
vitest_status=$?
[ "$vitest_status" -eq 0 ] || status=1

if [ -f .test-artifacts/vitest.json ]; then
  summary=$(node -e '
    const r = JSON.parse(require("fs").readFileSync(".test-artifacts/vitest.json", "utf8"));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // A suite that fails to load has no failed test of its own; count it as one failure.
    const brokenSuites = (r.testResults ?? []).filter((s) => s.status === "failed" && s.assertionResults.every((a) => a.status !== "failed")).length;
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests + brokenSuites} failed, ${skipped} skipped`);
    process.exit(r.numFailedTests + brokenSuites > 0 || r.numTotalTests === 0 ? 1 : 0);
  ')
  node_status=$?
  [ "$node_status" -eq 0 ] || status=1
else
  summary="tests: 0 passed, 1 failed"
  status=1
fi
echo "$summary"
exit "$status"
