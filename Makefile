PYTHON ?= python3
# extra arguments of tools/main_job.py, e.g. make main ARGS="--seeds 3"
ARGS ?=

.PHONY: install test main bench

install:
	PYTHON=$(PYTHON) bash tools/install.sh

test: install
	$(PYTHON) -m pytest tests -q

main: install
	$(PYTHON) tools/main_job.py $(ARGS)

bench: install
	$(PYTHON) tools/analysis_tools/benchmark_losses.py
