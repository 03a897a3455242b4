# The two commands a new machine needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY_SOURCES := operator tests

.PHONY: setup test lint typecheck pytest demo demo-local cluster-up cluster-down bench proto clean image

setup:
	@hack/setup.sh

test: setup lint typecheck pytest

lint:
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

# The operator's story on the local one-node cluster (hack/cluster; left running afterwards).
demo: setup
	@hack/demo

# The local watch mode's story: one leaking process, no cluster.
demo-local:
	@hack/setup.sh local
	$(BIN)/oomforensics demo

# The real one-node test cluster (docs/test-cluster.md); `up` prints the kubeconfig's path.
cluster-up:
	@hack/cluster up

cluster-down:
	@hack/cluster down

# Benchmarks measure; tests never time. Results go to benchmarks/RESULTS.md.
# The pre-OOM benchmark kills real processes for ~40 min; PREOOM_ARGS="--repeat 1" is quicker.
PREOOM_ARGS ?=
# The scale benchmark runs one operator over 1,000 pods for 10 min; SCALE_ARGS="--duration 120" is quicker.
SCALE_ARGS ?=
bench: setup
	$(BIN)/python benchmarks/bench_analysis.py
	$(BIN)/python benchmarks/bench_cli.py
	$(BIN)/python benchmarks/bench_preoom.py $(PREOOM_ARGS)
	$(BIN)/python benchmarks/bench_capture_latency.py
	$(BIN)/python benchmarks/bench_scale.py $(SCALE_ARGS)
	$(BIN)/python benchmarks/bench_preoom_operator.py
	$(BIN)/python benchmarks/bench_sigkill.py
	$(BIN)/python benchmarks/bench_outage.py

# Regenerate the protobuf module after editing profile.proto (the output is committed).
proto: setup
	cd operator/oomforensics/pprof && ../../../$(BIN)/python -m grpc_tools.protoc -I. \
		--python_out=. --pyi_out=. profile.proto

# The operator image (needs a Docker engine; tests/deploy replays its build steps without one).
IMAGE ?= oomforensics:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) demo-output .mypy_cache .pytest_cache .ruff_cache
