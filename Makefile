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
# Humble has no ROS_AUTOMATIC_DISCOVERY_RANGE (Iron+): it reads ROS_LOCALHOST_ONLY=1, which Jazzy
# deprecates with a warning; each distro gets only its own (as alfie_gr00t/discovery.py does).
ifneq ($(filter $(ROS_DISTRO),humble galactic foxy),)
export ROS_LOCALHOST_ONLY := 1
unexport ROS_AUTOMATIC_DISCOVERY_RANGE
else
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
unexport ROS_LOCALHOST_ONLY
endif
export PYTHONUNBUFFERED := 1

.PHONY: venv build test demo bench bench-motion clean triton-venv bench-triton torch-venv test-py310 discovery-env

# Two targets, one code base. ROS 2 Humble (the robot: Jetson, Python 3.10), after the user's
# `source /opt/ros/humble/setup.bash`: rclpy and the messages from apt, seen through a venv with
# --system-site-packages, the pip set of requirements-humble.txt, colcon run by the venv's Python
# (apt's /usr/bin/colcon would test with /usr/bin/python3). Otherwise: Jazzy from PyPI (requirements.txt).
ifeq ($(ROS_DISTRO),humble)
REQUIREMENTS := requirements-humble.txt
VENV_FLAGS := --system-site-packages
COLCON := $(PY) -c 'import sys; from colcon_core.command import main; sys.exit(main())'
else
REQUIREMENTS := requirements.txt
VENV_FLAGS :=
COLCON := colcon
endif

# What the recipes get for discovery (test_discovery.py compares it with alfie_gr00t/discovery.py).
discovery-env:
	@echo "ROS_AUTOMATIC_DISCOVERY_RANGE=$${ROS_AUTOMATIC_DISCOVERY_RANGE-} ROS_LOCALHOST_ONLY=$${ROS_LOCALHOST_ONLY-}"

venv: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r $(REQUIREMENTS)
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

# Real torch (CPU, pinned: a local wheel, seconds) for the DiT tests (test_dit_backends.py).
torch-venv: $(VENV)/.torch-installed

$(VENV)/.torch-installed: requirements-torch.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-torch.txt
	@touch $@

# Under `make test` a missing Triton is a failure, not a skip.
test: export ALFIE_REQUIRE_TRITON := 1

build: venv
	$(ACTIVATE) && $(COLCON) --log-base log build --base-paths . --build-base build --install-base install \
	  --event-handlers console_cohesion+

test: build triton-venv torch-venv
	@rm -rf build/alfie_gr00t/test_results
	$(ACTIVATE) && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-61} $(COLCON) --log-base log test --base-paths . \
	  --build-base build --install-base install --event-handlers console_direct+ \
	  --pytest-args -p no:cacheprovider -q -ra
	$(ACTIVATE) && $(COLCON) test-result --test-result-base build --verbose
	$(PY) .ci/check_test_count.py build/alfie_gr00t $(MIN_TESTS)
	@$(MAKE) --no-print-directory test-py310

# The robot's Python: the ROS-free part of the suite (ALFIE_ROS_FREE=1: test modules that import ROS
# are one skip each, with the reason) on CPython 3.10 with the Humble pins, in .venv-py310/.
# No tests, or fewer than MIN_TESTS_PY310, fail like any test failure.
PY310_VENV := .venv-py310
MIN_TESTS_PY310 ?= 300
PYTHON310 ?= $(shell for p in python3.10 "$$(pyenv prefix "$$(pyenv latest 3.10 2>/dev/null)" 2>/dev/null)/bin/python3.10" \
  $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; do \
  "$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null && { command -v "$$p"; break; }; done)

$(PY310_VENV)/.installed: requirements-humble.txt
	@test -n "$(PYTHON310)" || { echo "no CPython 3.10: put python3.10 on PATH (or pyenv install 3.10), or set PYTHON310=" >&2; exit 1; }
	@test -x $(PY310_VENV)/bin/python || $(PYTHON310) -m venv $(PY310_VENV)
	$(PY310_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-humble.txt
	@touch $(PY310_VENV)/COLCON_IGNORE $@

test-py310: $(PY310_VENV)/.installed
	@rm -rf build/py310
	ALFIE_ROS_FREE=1 ALFIE_REQUIRE_TRITON= ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-65} $(PY310_VENV)/bin/python -m pytest test \
	  -p no:cacheprovider -q -ra --junitxml=build/py310/py310.xml
	$(PY310_VENV)/bin/python .ci/check_test_count.py build/py310 $(MIN_TESTS_PY310)

demo: build
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-62} \
	  python -m alfie_gr00t.tools.bringup mock_mode:=true use_sim_robot:=true auto_activate:=true \
	  mock_policy:=trajectory mock_delay_ms:=$(LATENCY) mock_jitter_ms:=$(JITTER) \
	  ipc_path:=/tmp/alfie_gr00t_demo_$$$$.sock duration:=$(DURATION)

# `make bench`: the inference-path benchmark, the motion-fidelity one, Isaac-GR00T interop, then real-time chunking
# against the crossfade (bench-motion alone: BENCH_MOTION_ARGS, e.g. --quick or --latencies 250; results in
# bench_out/motion.json; BENCH_RTC_ARGS, e.g. --quick or --policies mock; bench_out/rtc.json).
# Last, stops on a busy computer (BENCH_BUSY_ARGS, e.g. --quick or --rounds 100; bench_out/busy.json).
# matplotlib for the plots, pinned, only for the benchmarks
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-bench.txt
	@touch $@

bench: build $(VENV)/.bench-installed
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-63} \
	  python -m alfie_gr00t.tools.bench $(BENCH_ARGS)
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-64} \
	  python -m alfie_gr00t.tools.bench_motion $(BENCH_MOTION_ARGS)
	$(PY) -m alfie_gr00t.tools.bench_interop $(BENCH_INTEROP_ARGS)
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-65} \
	  python -m alfie_gr00t.tools.bench_rtc $(BENCH_RTC_ARGS)
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-66} \
	  python -m alfie_gr00t.tools.bench_busy $(BENCH_BUSY_ARGS)

bench-motion: build $(VENV)/.bench-installed
	$(ACTIVATE) && source install/setup.bash && ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-64} \
	  python -m alfie_gr00t.tools.bench_motion $(BENCH_MOTION_ARGS)

bench-triton: venv triton-venv $(VENV)/.bench-installed
	$(PY) -m alfie_gr00t.tools.bench_triton $(BENCH_TRITON_ARGS)

clean:
	rm -rf build install log
