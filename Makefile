PYTHON ?= python3

.PHONY: install test main bench

install:
	PYTHON=$(PYTHON) bash tools/install.sh

test: install
	$(PYTHON) -m pytest tests -q

main: install
	$(PYTHON) tools/main_job.py

bench: install
	$(PYTHON) tools/analysis_tools/benchmark_losses.py
