# The two commands of the README, and their shared set-up.
.PHONY: bootstrap demo test

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/touchpoint demo

test: bootstrap
	.venv/bin/python -m pytest
