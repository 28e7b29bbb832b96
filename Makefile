# One-command set-up: every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo memory-demo test bench ltsf clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,demo]"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: forecast ETTh1 (embedded) next to naive and linear baselines, plot
	$(VENV)/bin/python -m titans_seq.forecast_demo

memory-demo: $(STAMP)  ## the memory alone learning associative recall at test time
	$(VENV)/bin/python -m titans_seq.demo

test: $(STAMP)  ## the test suite
	$(VENV)/bin/python -m pytest

bench: $(STAMP)  ## memory speed benchmark (peer side by side when BENCH_PYTHON has titans-pytorch)
	$(VENV)/bin/python benchmarks/memory_speed.py

ltsf: $(STAMP)  ## long-term forecasting benchmark (PROTOCOLS.md section 2) on ETTh1
	$(VENV)/bin/python benchmarks/ltsf.py --data datamodules/datasets/data/ETTh1.csv.gz

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
