# One-command set-up: every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: the memory learning associative recall at test time
	$(VENV)/bin/python -m titans_seq.demo

test: $(STAMP)  ## the test suite
	$(VENV)/bin/python -m pytest

bench: $(STAMP)  ## memory speed benchmark (peer side by side when BENCH_PYTHON has titans-pytorch)
	$(VENV)/bin/python benchmarks/memory_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
