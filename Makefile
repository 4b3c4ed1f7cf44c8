# The two commands a newcomer needs: `make dev` and `make test`.
.PHONY: dev test test-arm64 sam-local lint bench fmt soak fuzz fuzz-cmin deploy deploy-check

dev:
	@bash scripts/dev.sh

test:
	@bash scripts/test.sh

# A part of `make test`: the arm64 validate bootstrap under qemu-user.
test-arm64:
	@bash scripts/test-arm64.sh

# A part of `make test`: the deployed functions under `sam local` (Docker).
sam-local:
	@bash scripts/sam_local.sh

# Deploying needs Rust and Python only (scripts/deploy.sh says what it installs).
deploy:
	@bash scripts/deploy.sh deploy

deploy-check:
	@bash scripts/deploy.sh check

bench:
	@bash scripts/bench.sh

soak:
	@bash scripts/soak.sh

fuzz:
	@bash scripts/fuzz.sh

# Minimises the committed seed corpus (keeps hand-named seeds).
fuzz-cmin:
	@bash scripts/fuzz.sh cmin

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
