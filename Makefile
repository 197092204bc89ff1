# shardmart: the short front door to the CMake build. Every target first makes sure the Debian
# packages it needs are present (scripts/install-deps is a no-op when they are).
#
#   make          release build (assertions on) in build/
#   make run      build, then start one node with defaults
#   make test     build and pass every test: unit, fuzz-corpus replay, ASan+UBSan, lint
#   make asan     every test under ASan + UBSan in build-asan/
#   make fuzz     libFuzzer targets, FUZZ_SECONDS each (default 30), in build-fuzz/
#   make soak     the kill -9 crash test for SOAK_ROUNDS rounds (default 200)
#   make bench    the benchmarks in bench/, printed as medians and ratios
#   make bench-peers  the same workloads against Redis+Lua and PostgreSQL, started on loopback
#   make lint     clang-format check, cppcheck, clang-tidy
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))
BUILD := build
CTEST := ctest --output-on-failure -j $(JOBS)

.PHONY: all deps build run test unit asan fuzz soak bench bench-peers lint format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/Makefile: CMakeLists.txt | deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS)

run: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j $(JOBS) --target shardmart
	@scripts/run-node $(ARGS)

unit: build
	cd $(BUILD) && $(CTEST)

test: unit asan lint
	@echo "make test: all passed"

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSHARDMART_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DSHARDMART_FUZZ=ON \
		-DSHARDMART_SANITIZE=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)
	@scripts/run-fuzz build-fuzz $(FUZZ_SECONDS)

SOAK_ROUNDS ?= 200
soak: build
	cd $(BUILD) && SHARDMART_CRASH_ROUNDS=$(SOAK_ROUNDS) ./integration_test_crash

bench: build
	@scripts/run-bench $(BUILD)

bench-peers: build
	@bench/peers/run

lint: deps $(BUILD)/Makefile
	@scripts/lint $(BUILD)

format:
	@clang-format -i $$(git ls-files --cached --others --exclude-standard '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
