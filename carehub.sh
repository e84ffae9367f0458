#!/usr/bin/env sh
# CareHub's one entry point for a fresh clone: installs what it needs, then runs it.
#   ./carehub.sh demo     the demo: broker, hub, simulated care home, web app
#   ./carehub.sh test     the whole test suite
#   ./carehub.sh lint     ruff, import-linter (the layers of docs/architecture.md), mypy
#   ./carehub.sh mutants [module|mutant-glob]   mutation testing (docs/testing.md), one child
#   ./carehub.sh <args>   any other `carehub` command, e.g. ./carehub.sh check-config sites/demo.yaml
set -eu
cd "$(dirname "$0")"

# uv pins and installs the locked dependencies; bring it in from PyPI when it is not installed.
UV="$(command -v uv || true)"
if [ -z "$UV" ]; then
    if [ ! -x .tools/bin/uv ]; then
        echo "carehub.sh: installing uv into .tools/ (once)" >&2
        python3 -m venv .tools
        .tools/bin/pip install --quiet --disable-pip-version-check "uv>=0.5,<1"
    fi
    UV=.tools/bin/uv
fi
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11+, never download one
"$UV" sync --locked --quiet

cmd="${1:-demo}"
[ $# -gt 0 ] && shift
case "$cmd" in
    demo) exec .venv/bin/carehub demo "$@" ;;
    test) exec .venv/bin/python -m pytest "$@" ;;
    lint) .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && exec .venv/bin/mypy ;;
    mutants)
        # One module at a time, one child process (docs/testing.md): e.g. subscriber, pipeline,
        # engine, security, deps, auth, freed_hours, ladder, or a mutmut name glob.
        case "${1:-}" in
            "") echo "usage: ./carehub.sh mutants subscriber|pipeline|engine|security|deps|auth|freed_hours|ladder|<glob>" >&2; exit 2 ;;
            subscriber) sel="carehub.subscriber.*" ;;
            pipeline) sel="gateway.pipeline.*" ;;
            engine) sel="services.rules.engine.*" ;;
            security) sel="services.web.security.*" ;;
            deps) sel="services.web.deps.*" ;;
            auth) sel="services.web.routes.auth.*" ;;
            freed_hours) sel="services.reports.freed_hours.*" ;;
            ladder) sel="services.notify.ladder.*" ;;
            *) sel="$1" ;;
        esac
        .venv/bin/mutmut run --max-children 1 "$sel"
        exec .venv/bin/mutmut results ;;
    *) exec .venv/bin/carehub "$cmd" "$@" ;;
esac
