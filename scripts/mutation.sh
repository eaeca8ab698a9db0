#!/usr/bin/env bash
# Mutation testing of the science modules with mutmut (docs/testing.md): NOT part of the default test
# run (it takes minutes to an hour per group); the tests that kill the mutants are.
#   usage: bash scripts/mutation.sh GROUP [GROUP ...]      GROUP: rules descriptors fit peaks describe
#                                                                 doubles pipeline cnn, or all
# Each group runs in a scratch copy of the working tree (its git-tracked files, the models included),
# niced, one mutant at a time, bounded by MUTATION_TIMEOUT seconds per group (default 3600). The
# summary (killed / survived / timeout / no tests, score) goes to stdout and to
# $MUTATION_OUT/<group>.txt (default out/mutation), with the diff of every surviving mutant.
# MUTATION_SURVIVORS=1 runs again only the mutants that survived the group's last run (listed in
# $MUTATION_OUT/<group>.results), e.g. after adding tests: a killed mutant stays killed (tests are only
# added), so the group's score is the last run's with these mutants' new results.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${MUTATION_OUT:-$repo/out/mutation}
limit=${MUTATION_TIMEOUT:-3600}
mutmut=$repo/.venv/bin/mutmut
[[ -x $mutmut ]] || .venv/bin/pip install -q "mutmut==3.8.1"
mkdir -p "$out"
# the scratch copies live elsewhere: the real-frame tests still need ../shared of this checkout
export LAUE_LIVE_SHARED=${LAUE_LIVE_SHARED:-$(cd "$repo/.." && pwd)/shared}

# group -> files to mutate (globs) | tests that may kill them (mutmut runs, per mutant, only those
# that execute the mutated function)
declare -A FILES TESTS
FILES[rules]="laue_live/_rules.py"
TESTS[rules]="tests/spots tests/describe tests/pipeline/test_pipeline.py tests/doubles tests/cnn/test_metrics.py"
FILES[descriptors]="laue_live/spots/_fit_descriptors.py laue_live/spots/_table.py"
TESTS[descriptors]="tests/spots tests/describe tests/pipeline/test_pipeline.py"
FILES[fit]="laue_live/spots/_fit.py"
# the fit runs in nearly every science test: only the ones that look at it (a surviving mutant runs
# every selected test that calls the fit)
TESTS[fit]="tests/spots/test_fit.py tests/spots/test_fit_start.py tests/spots/test_descriptors.py tests/spots/test_descriptor_table.py"
FILES[peaks]="laue_live/spots/_peaks.py laue_live/spots/_cutouts.py laue_live/spots/_prepare.py"
TESTS[peaks]="tests/spots tests/describe tests/pipeline/test_peaks.py"
FILES[describe]="laue_live/describe/*.py"
TESTS[describe]="tests/describe tests/spots tests/doubles/test_wiring.py"
FILES[doubles]="laue_live/doubles/_describe.py laue_live/doubles/_fit.py laue_live/doubles/_predict.py laue_live/doubles/_synth.py"
TESTS[doubles]="tests/doubles"
FILES[pipeline]="laue_live/pipeline/*.py"
TESTS[pipeline]="tests/pipeline/test_pipeline.py tests/pipeline/test_peaks.py"
# the spot CNN: what turns cutouts into its inputs and its outputs into descriptors, its trainer, its
# scores (the network's layers are checked by the accuracy tests, whose model loads in a fixture)
FILES[cnn]="laue_live/cnn/_descriptors.py laue_live/cnn/_normalise.py laue_live/cnn/_augment.py laue_live/cnn/_train.py laue_live/cnn/_metrics.py"
TESTS[cnn]="tests/cnn"

groups=("$@")
[[ ${#groups[@]} -gt 0 ]] || { echo "usage: bash scripts/mutation.sh GROUP... (${!FILES[*]} or all)" >&2; exit 2; }
[[ ${groups[0]} == all ]] && groups=(rules descriptors fit peaks describe doubles pipeline cnn)

for g in "${groups[@]}"; do
  [[ -n ${FILES[$g]:-} ]] || { echo "unknown group $g (${!FILES[*]})" >&2; exit 2; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/laue-live-mutation-$g.XXXX")
  git ls-files -z | xargs -0 cp -P --parents -t "$work"  # -P: laue_live/models is a link to models/
  {
    echo "[mutmut]"
    echo "source_paths=laue_live"
    echo "only_mutate="
    for f in ${FILES[$g]}; do echo "    $f"; done
    echo "pytest_add_cli_args_test_selection="
    for t in ${TESTS[$g]}; do echo "    $t"; done
    printf 'pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -x\n    -q\n'  # one argument a line
    echo "also_copy=models"  # the shipped networks (laue_live/models links to it)
    echo "process_isolation=fork"
  } > "$work/setup.cfg"
  echo "== $g: mutating ${FILES[$g]} (tests: ${TESTS[$g]}) in $work"
  start=$(date +%s)
  # one thread per process: torch and BLAS thread pools do not survive fork() well, and the
  # machine is shared
  names=()
  if [[ -n ${MUTATION_SURVIVORS:-} ]]; then
    mapfile -t names < <(grep -E ": (survived|no tests)$" "$out/$g.results" | cut -d: -f1 | tr -d ' ')
    cp "$out/$g.results" "$out/$g.results.before"
    echo "   again only the ${#names[@]} mutants that survived the last run"
  fi
  (cd "$work" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timeout "$limit" nice -n 15 "$mutmut" run --max-children 1 \
     "${names[@]}" >"$out/$g.log" 2>&1) || echo "   (mutmut stopped: exit $? - timeout $limit s or error, see $out/$g.log)"
  secs=$(( $(date +%s) - start ))
  (cd "$work" && "$mutmut" results --all true 2>/dev/null) > "$out/$g.results" || true
  if [[ -n ${MUTATION_SURVIVORS:-} ]]; then  # the last run's results, with the rerun mutants' new ones
    "$repo/.venv/bin/python" - "$out/$g.results.before" "$out/$g.results" <<'PY'
import sys
def read(path):
    return {k.strip(): v.strip() for k, v in (line.rsplit(":", 1) for line in open(path) if ":" in line)}
before, now = read(sys.argv[1]), read(sys.argv[2])
for name, status in before.items():
    if status in ("survived", "no tests") and now.get(name, "not checked") != "not checked":
        before[name] = now[name]
open(sys.argv[2], "w").write("".join(f"    {k}: {v}\n" for k, v in before.items()))
PY
  fi
  {
    echo "group $g: ${FILES[$g]}"
    echo "tests: ${TESTS[$g]}"
    "$repo/.venv/bin/python" - "$out/$g.results" "$secs" <<'EOF'
import collections, sys
counts = collections.Counter()
for line in open(sys.argv[1]):
    if ":" in line:
        counts[line.rsplit(":", 1)[1].strip()] += 1
killed = counts["killed"] + counts["timeout"]
total = sum(counts.values()) - counts["skipped"] - counts["not checked"]
score = 100 * killed / total if total else float("nan")
print(f"mutants {total}: killed {counts['killed']}, timeout {counts['timeout']}, survived {counts['survived']}, "
      f"no tests {counts['no tests']}, other {dict((k, v) for k, v in counts.items() if k not in ('killed', 'timeout', 'survived', 'no tests'))}")
print(f"score {score:.1f}% killed, in {sys.argv[2]} s")
EOF
    echo "surviving mutants:"
    grep -E ": (survived|no tests)$" "$out/$g.results" | while read -r name _; do
      (cd "$work" && "$mutmut" show "${name%:}" 2>/dev/null | grep -E "^[-+][^-+]" | sed "s|^|  ${name%:} |")
    done
  } | tee "$out/$g.txt"
  rm -rf "$work"
done
