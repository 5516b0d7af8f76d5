# The two commands of the quick start:
#   make run    set everything up, then run the service on ./demo with a demo image
#   make test   set everything up, then run the whole test suite
.PHONY: setup run test bench

setup:
	./scripts/setup

run: setup
	./scripts/demo

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python bench/raster.py
