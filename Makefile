# dbcost developer commands. `make demo` and `make test` are the README's quick start.
.PHONY: demo test lint bench setup

setup:
	bash .ci/setup

# The main job on the embedded default: the built-in Cost Explorer emulator and a DuckDB file. Installs the
# runtime dependencies only (no test servers, no dev tools); `make test` adds the rest to the same .venv.
demo:
	bash .ci/setup --runtime
	.venv/bin/dbcost demo --dir dbcost-demo

# The whole suite (unit + integration against real local servers), lint and types, then the clean-install
# test (a fresh venv with the runtime dependencies only runs the demo) as a step of its own.
test: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy
	.venv/bin/pytest -q -n 2 --dist loadfile
	.venv/bin/pytest -q -m clean_install tests/test_packaging.py

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

bench:
	.venv/bin/python -m bench.bench_parse --matrix
