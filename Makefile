# Thin front for the CMake build: every command is one word.
#   make          build the library, examples and tests (release, build/release)
#   make demo     the pets example end to end (generated API, LMDB store kept
#                 in build/demo/pets.db); builds only kivis-gen, the libraries,
#                 the kivis tool and the example (build/demo)
#   make remote-demo  the caches across machines (examples/remote): a private
#                 PostgreSQL server, a writer and a reader process, each with
#                 memory and LMDB tiers; prints the reader's hit rates and
#                 invalidation delays (build/remote; REMOTE_N updates, 1000)
#   make test     every test: ctest under ASan+UBSan, TSan, valgrind, fuzzers (FUZZ_SECONDS each)
#   make fuzz     run each libFuzzer target for FUZZ_SECONDS (default 20)
#   make bench    run the benchmarks: the B+tree alone, then kivis against raw
#                 LMDB, SQLite and Berkeley DB (docs/bench.md; BENCH_N=...),
#                 PostgreSQL (BENCH_PG_N) and etcd (BENCH_ETCD_N)
#   make bench-scaling  cost per operation against N up to 10^7 (PNG)
#   make bench-profile  instructions and cache misses per get, each engine
#                 (callgrind; PROFILE_N="10000 100000")
#   make bench-ops  instructions and cache misses per op of every phase,
#                 kivis beside each raw engine (callgrind; OPS_N=20000)
#   make install  install the release build under PREFIX (default /usr/local;
#                 DESTDIR honoured): libkivis.a/.so, libkivis-<backend>.a/.so
#                 for each backend built, headers, kivis-gen, kivis, the
#                 pkg-config modules and the CMake package
# Each target first installs the system packages it needs when missing
# (scripts/deps.sh demo|test|bench).

MAKEFLAGS   += --no-print-directory
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 20
BUILD       := build
PREFIX      ?= /usr/local

DEMO        := $(BUILD)/demo
DEMO_STORE  := $(DEMO)/pets.db
REMOTE      := $(BUILD)/remote
REMOTE_N    ?= 1000

.PHONY: all deps deps-demo deps-remote deps-test deps-bench release asan tsan fuzz-build demo remote-demo test unit fuzz bench bench-scaling bench-profile bench-ops valgrind install clean

all: release

deps: deps-test
deps-demo deps-remote deps-test deps-bench:
	@bash scripts/deps.sh $(@:deps-%=%)

release: deps
	@cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)/release -j $(JOBS)

asan: deps
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DKIVIS_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS)

tsan: deps
	@cmake -S . -B $(BUILD)/tsan -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS="-fsanitize=thread -g" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread >/dev/null
	@cmake --build $(BUILD)/tsan -j $(JOBS) --target test_lmdb test_lmdb_layout test_etcd

fuzz-build: deps
	@CC=clang cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKIVIS_FUZZ=ON -DKIVIS_TESTS=OFF \
	  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" >/dev/null
	@cmake --build $(BUILD)/fuzz -j $(JOBS)

# The first run: the example and the tool to look at its store, on LMDB
# alone (the same build whatever else is installed), no tests.
demo: deps-demo
	@cmake -S . -B $(DEMO) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKIVIS_TESTS=OFF -DKIVIS_BENCH=OFF -DKIVIS_WITH_LMDB=ON \
	  -DKIVIS_WITH_SQLITE=OFF -DKIVIS_WITH_ROCKSDB=OFF >/dev/null
	@cmake --build $(DEMO) -j $(JOBS) --target example_pets kivis_cli
	@rm -rf $(DEMO_STORE)
	@$(DEMO)/examples/example_pets --lmdb $(DEMO_STORE)
	@echo
	@echo "The store is kept in $(DEMO_STORE); look at it with"
	@echo "  $(DEMO)/tools/kivis dump $(DEMO_STORE)"

# Two processes, one PostgreSQL: LMDB and PostgreSQL backends alone.
remote-demo: deps-remote
	@cmake -S . -B $(REMOTE) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DKIVIS_TESTS=OFF -DKIVIS_BENCH=OFF -DKIVIS_WITH_LMDB=ON -DKIVIS_WITH_POSTGRES=ON \
	  -DKIVIS_WITH_SQLITE=OFF -DKIVIS_WITH_ROCKSDB=OFF >/dev/null
	@cmake --build $(REMOTE) -j $(JOBS) --target example_remote
	@bash examples/remote/run.sh $(REMOTE)/examples/example_remote $(REMOTE_N)

unit: asan
	@cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

test: asan release tsan fuzz-build
	@bash scripts/test.sh $(FUZZ_SECONDS)

fuzz: fuzz-build
	@bash scripts/fuzz.sh $(BUILD)/fuzz/fuzz $(FUZZ_SECONDS)

bench: deps-bench release
	@bash scripts/bench.sh $(BUILD)/release

bench-scaling: deps-bench release
	@BENCH_SCALING_ONLY=1 bash scripts/bench.sh $(BUILD)/release 10000000

bench-profile: deps-bench release
	@bash scripts/bench-profile.sh $(BUILD)/release $(PROFILE_N)

bench-ops: deps-bench release
	@bash scripts/bench-ops.sh $(BUILD)/release $(OPS_N)

valgrind: release
	@bash scripts/valgrind.sh $(BUILD)/release/tests

install: release
	@cmake --install $(BUILD)/release --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
