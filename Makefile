# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
# Both create .venv/ (pinned requirements.txt) on first use and reuse it afterwards.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ACTIVATE := source $(VENV)/bin/activate
DURATION ?= 10
MIN_TESTS ?= 40
# `make demo LATENCY=250 JITTER=50`: the mock policy takes that long per chunk (Orin-like: 250-550).
LATENCY ?= 1
JITTER ?= 0

# Nothing leaves loopback: DDS discovery stays on localhost, each entry point has its own domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PYTHONUNBUFFERED := 1

.PHONY: venv build test demo bench bench-motion clean triton-venv bench-triton

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $(VENV)/COLCON_IGNORE $@

# Triton Inference Server (README "Many robots: Triton"): its own venv (numpy<2) for the
# server and its Python-backend model; the gRPC client goes into .venv for groot_server.
TRITON_VENV := .venv-triton
export ALFIE_TRITON_VENV := $(CURDIR)/$(TRITON_VENV)

triton-venv: $(TRITON_VENV)/.installed $(VENV)/.triton-client-installed

$(TRITON_VENV)/.installed: requirements-triton.txt
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-triton.txt
	@touch $(TRITON_VENV)/COLCON_IGNORE $@

$(VENV)/.triton-client-installed: requirements-triton-client.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-triton-client.txt
	@touch $@

# Under `make test` a missing Triton is a failure, not a skip.
test: export ALFIE_REQUIRE_TRITON := 1

build: venv
	$(ACTIVATE) && colcon --log-base log build --base-paths . --build-base build --install-base install \
	  --event-handlers console_cohesion+

test: build triton-venv
	@rm -rf build/alfie_gr00t/test_results
	$(ACTIVATE) && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-61} colcon --log-base log test --base-paths . \
	  --build-base build --install-base install --event-handlers console_direct+ \
	  --pytest-args -p no:cacheprovider -q -ra
	$(ACTIVATE) && colcon test-result --test-result-base build --verbose
	$(PY) .ci/check_test_count.py build/alfie_gr00t $(MIN_TESTS)

demo: build
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-62} \
	  python -m alfie_gr00t.tools.bringup mock_mode:=true use_sim_robot:=true auto_activate:=true \
	  mock_policy:=trajectory mock_delay_ms:=$(LATENCY) mock_jitter_ms:=$(JITTER) \
	  ipc_path:=/tmp/alfie_gr00t_demo_$$$$.sock duration:=$(DURATION)

# `make bench`: the inference-path benchmark, then the motion-fidelity one (bench-motion alone:
# BENCH_MOTION_ARGS, e.g. --quick or --latencies 250; results in bench_out/motion.json).
# matplotlib for the plots, pinned, only for the benchmarks
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	@touch $@

bench: build $(VENV)/.bench-installed
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-63} \
	  python -m alfie_gr00t.tools.bench $(BENCH_ARGS)
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-64} \
	  python -m alfie_gr00t.tools.bench_motion $(BENCH_MOTION_ARGS)

bench-motion: build $(VENV)/.bench-installed
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-64} \
	  python -m alfie_gr00t.tools.bench_motion $(BENCH_MOTION_ARGS)

bench-triton: venv triton-venv $(VENV)/.bench-installed
	$(PY) -m alfie_gr00t.tools.bench_triton $(BENCH_TRITON_ARGS)

clean:
	rm -rf build install log
