# est-hw: the two set-up commands of the README, and their parts.
#   make demo   enroll a fresh SoftHSM2 token against the local test EST server
#   make test   ruff, mypy (strict) and the whole test suite
.PHONY: setup demo test lint typecheck pytest clean

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

typecheck: setup
	.venv/bin/mypy

pytest: setup
	.venv/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# make bench  medians of repeated runs against the test server, SoftHSM2 and swtpm
#             (docs/performance.md); BENCH_ARGS=--quick for 5 repeats instead of 15
.PHONY: bench
bench: setup
	.venv/bin/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
