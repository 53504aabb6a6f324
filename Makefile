PYTHON ?= python3
# extra arguments of tools/main_job.py, e.g. make main ARGS="--seeds 3"
ARGS ?=

.PHONY: install test main bench speed

install:
	PYTHON=$(PYTHON) bash tools/install.sh

test: install
	$(PYTHON) -m pytest tests -q

main: install
	$(PYTHON) tools/main_job.py $(ARGS)

bench: install
	$(PYTHON) tools/analysis_tools/benchmark_losses.py

# CI's guard: GHM-C / GHM-R against plain BCE / L1 at a reduced size (about 30 s)
speed: install
	$(PYTHON) tools/analysis_tools/check_loss_speed.py
