# Hotline — the two commands: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
CONFIG ?= config/hotline.toml
HOTLINED := target/debug/hotlined

.PHONY: run test deps build lint unit sip-test check-config prompts bench clean

## make run: build and start hotlined with the example config (SIP 127.0.0.1:5060, admin 127.0.0.1:8080)
run: build
	@mkdir -p data
	$(HOTLINED) run --config $(CONFIG)

build:
	$(CARGO) build --bin hotlined

## make test: formatting, lints, every cargo test, config check and the SIPp suite
test: deps lint unit check-config sip-test

# Debian tools the tests use (SIPp also ships the RTP/DTMF pcaps some unit tests read;
# Chromium renders the HTML report in sip-test/report_chromium.sh and, driven through
# chromium-driver by python3-selenium, the /reports page there and the login form in
# sip-test/login_chromium.sh; baresip is
# an operator phone in sip-test/queue.sh)
deps:
	scripts/ensure-tools.sh sipp sipsak curl python3 psql chromium chromedriver selenium baresip

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# the appeals store is tested on SQLite and on a throw-away PostgreSQL cluster
unit:
	scripts/with-postgres.sh $(CARGO) test --workspace

check-config: build
	$(HOTLINED) check --config $(CONFIG)
	$(HOTLINED) check --config config/examples/minsk-139/hotline.toml

# run.sh empties sip-test/out, so the Chromium checks run after it; all always run
sip-test: deps build
	HOTLINED=$(HOTLINED) bash sip-test/run.sh; a=$$?; \
	HOTLINED=$(HOTLINED) scripts/with-postgres.sh bash sip-test/durability.sh; b=$$?; \
	HOTLINED=$(HOTLINED) bash sip-test/report_chromium.sh; c=$$?; \
	HOTLINED=$(HOTLINED) bash sip-test/login_chromium.sh; d=$$?; \
	HOTLINED=$(HOTLINED) bash sip-test/workspace_chromium.sh; e=$$?; \
	[ $$a -eq 0 ] && [ $$b -eq 0 ] && [ $$c -eq 0 ] && [ $$d -eq 0 ] && [ $$e -eq 0 ]

## make prompts: regenerate the Russian prompts (menus from config/prompts/ru/prompts.toml, and the
## numbers) with espeak-ng and sox; commit the WAVs. Admins may replace any WAV with a recording.
prompts:
	scripts/make-ivr-prompts.sh
	scripts/make-prompts.sh

## make bench: release build, criterion micro-benchmarks, then hotlined under SIPp load on
## 127.0.0.1 (SIPp's own uas as the baseline), an overload probe and a 30-minute soak; writes
## docs/BENCHMARKS.md. Not part of `make test`. BENCH_ARGS=--quick for a smoke run (a 2-minute
## soak); BENCH_ARGS='--only micro' for one section, '--only soak' for the soak alone,
## '--only cases' for search and worklists over 1 000 000 appeals (SQLite and PostgreSQL).
bench:
	scripts/ensure-tools.sh sipp tcpdump python3
	$(CARGO) build --release -p hotlined --bin hotlined
	$(CARGO) build --release -p appeals --example cases_bench
	$(CARGO) bench -p sip -p media -p acd --no-run
	python3 bench/run.py --hotlined target/release/hotlined $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf sip-test/out
