# One-command set-up: every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# the DNA benchmark's nine Titans fits, two at a time on the two cores
DNA_ARGS ?= --jobs 2

.PHONY: demo dna memory-demo test test-fast bench ltsf ltsf-long clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,demo]"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: forecast ETTh1 (embedded) next to naive and linear baselines, plot
	$(VENV)/bin/python benchmarks/forecast_demo.py

dna: $(STAMP)  ## DNA classification on the embedded promoter set (PROTOCOLS.md sections 3, 3b): Titans, its variants and the peers, 3 seeds
	$(VENV)/bin/python benchmarks/genomic.py --data datamodules/datasets/data/human_nontata_promoters.csv.gz $(DNA_ARGS)

memory-demo: $(STAMP)  ## the memory alone learning associative recall at test time
	$(VENV)/bin/python -m titans_seq.demo

test: $(STAMP)  ## the test suite
	$(VENV)/bin/python -m pytest

test-fast: $(STAMP)  ## a representative subset of the tests, in about a minute
	$(VENV)/bin/python -m pytest -m fast

bench: $(STAMP)  ## memory speed benchmark (peer side by side when BENCH_PYTHON has titans-pytorch)
	$(VENV)/bin/python benchmarks/memory_speed.py

ltsf: $(STAMP)  ## long-term forecasting benchmark (PROTOCOLS.md section 2, fixed windows) on ETTh1
	$(VENV)/bin/python benchmarks/ltsf.py --data datamodules/datasets/data/ETTh1.csv.gz

ltsf-long: $(STAMP)  ## long-history forecasting benchmark (PROTOCOLS.md section 2b) on ETTh1
	$(VENV)/bin/python benchmarks/ltsf.py --long-history --data datamodules/datasets/data/ETTh1.csv.gz $(LTSF_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
