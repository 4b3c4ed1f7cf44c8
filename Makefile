# The two commands a newcomer needs: `make dev` and `make test`.
.PHONY: dev test lint bench fmt soak

dev:
	@bash scripts/dev.sh

test:
	@bash scripts/test.sh

bench:
	@bash scripts/bench.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
