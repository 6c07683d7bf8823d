# ckring — build, test and tooling.  `make help` lists the targets.
# Quiet unless V=1.  Strict warnings; WERROR=1 (CI) turns them into errors.

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
V       ?= 0
WERROR  ?= 0
ifeq ($(CI),true)
WERROR  := 1
endif

Q := $(if $(filter 1,$(V)),,@)
say = $(if $(filter 1,$(V)),,@printf '  %-7s %s\n' $(1) $(2);)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-align -Wformat=2 -Wvla -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
OPT     ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Iinclude -I.
CFLAGS  += -std=c11 $(OPT) $(WARN) -fPIC -pthread -msse4.2 -MMD -MP $(XCFLAGS)
LDLIBS  += -llmdb -lpthread -lrt $(XLDLIBS)
LDFLAGS += $(XLDFLAGS)

# Two libraries, one public header each (docs/DESIGN.md, "The public line"):
#   libckring        the producer side: segment, lanes, events, clients,
#                    waits, the observer (include/ckring.h); no LMDB
#   libckring-store  the store, recovery and the flusher engine
#                    (include/ckring_store.h); links libckring and LMDB
# Both export exactly what their header declares (CKR_API, -fvisibility=
# hidden, a version script in packaging/; tests/test_symbols.sh checks it).
PROD_SRC  := $(wildcard shm/*.c ring/*.c event/*.c client/*.c)
# The third library, libckring-fleet (include/ckring_fleet.h): the shipper
# to PostgreSQL and recovery across hosts; links libpq, so the other two
# never do. Built over the public headers only (like the tools).
FLEET_SRC := $(wildcard fleet/*.c)
FLEET_OBJ := $(FLEET_SRC:%.c=$(BUILD)/%.o)
PG_CPPFLAGS := -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
FLEET_LIBS := -lpq
STORE_SRC := $(wildcard persist/*.c)
PROD_OBJ  := $(PROD_SRC:%.c=$(BUILD)/%.o)
STORE_OBJ := $(STORE_SRC:%.c=$(BUILD)/%.o)
LIB_SRC   := $(PROD_SRC) $(STORE_SRC)
LIB_OBJ   := $(PROD_OBJ) $(STORE_OBJ)
# The same sources with test hooks compiled in (tests link this one).
HOOK_OBJ  := $(LIB_SRC:%.c=$(BUILD)/hooks/%.o)
PROD_LIBS  := -lpthread -lrt
STORE_LIBS := -llmdb -lpthread -lrt
# Tools see the public headers only: the compiler enforces the line.
TOOL_CPPFLAGS := -D_GNU_SOURCE -Iinclude -Itools
# Explicit lists (static pattern rules): an object left in build/ by a
# source that moved can never be linked in its place. tools/metrics_http.c
# is part of ckring-flusher (its exporter), not a tool.
TOOL_PARTS := tools/metrics_http.c
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/bin/%,$(filter-out $(TOOL_PARTS),$(wildcard tools/*.c)))
DEMO_BINS := $(patsubst demo/%.c,$(BUILD)/bin/%,$(wildcard demo/*.c))
TOOLS     := $(TOOL_BINS) $(DEMO_BINS)
# Tools that need only the producer library (no LMDB linked).
PROD_TOOLS := $(BUILD)/bin/ckring-load
# The benchmark harness (bench/): modules of ckring-bench, and the push probe.
# Compiled against the public headers only (-Iinclude, no -I.).
BENCH_SRC := $(filter-out bench/push_probe.c bench/ship_bench.c,$(wildcard bench/*.c))
BENCH_OBJ := $(BENCH_SRC:%.c=$(BUILD)/%.o)
BENCH_TOOLS := $(BUILD)/bench/ckring-push-probe
TOOLS     += $(BUILD)/bin/ckring-bench
# Tools over libckring-fleet (libpq): the shipper, recovery across hosts, and
# ckring-admin (its host-lost). The flusher, ckring-inspect and ckring-load
# never link libpq (tests/test_symbols.sh).
FLEET_TOOLS := $(BUILD)/bin/ckring-ship $(BUILD)/bin/ckring-recover $(BUILD)/bin/ckring-admin
TEST_SRC  := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS := $(wildcard tests/test_*.sh)
# The Go binding (bindings/go) and its example (examples/go): gofmt, vet,
# go test -race, against an install of this build (bindings/go/env.sh).
GO_TEST_SCRIPT := bindings/go/test_go.sh
TEST_SCRIPTS += $(GO_TEST_SCRIPT)
TEST_HELPERS := $(wildcard tests/helpers/*.c)
TEST_HELPER_OBJ := $(TEST_HELPERS:%.c=$(BUILD)/%.o)

# Tests that exercise concurrency; `make tsan` runs these under ThreadSanitizer.
TSAN_TESTS ?= test_ring_stress test_client_threads test_metrics_threads

DEBIAN_PKGS := liblmdb-dev libcmocka-dev lmdb-utils pkg-config \
               python3 spin clang libclang-rt-14-dev libsqlite3-dev golang-go \
               libmicrohttpd-dev libjansson-dev prometheus curl postgresql libpq-dev

# Keep intermediate objects (tests and tools are built through them).
.SECONDARY:

.PHONY: all lib tools bench-tools tests test check asan tsan deps demo model bench install \
        torture admin-torture fuzz faults go-test bench-go go-example \
        demo-fleet pg-torture bench-ship fuzz-api \
        uninstall clean help

## all: build the libraries, the tools and the benchmark probes
all: lib tools bench-tools

## help: list the targets
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## deps: install the Debian packages ckring needs (apt-get, when missing)
deps:
	$(Q)missing=""; for p in $(DEBIAN_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "  DEPS   installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

## lib: build libckring, libckring-store and libckring-fleet (.a and .so)
lib: $(BUILD)/libckring.a $(BUILD)/libckring.so $(BUILD)/libckring-store.a \
     $(BUILD)/libckring-store.so $(BUILD)/libckring-fleet.a $(BUILD)/libckring-fleet.so

$(BUILD)/libckring.a: $(PROD_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libckring-store.a: $(STORE_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libckring.so: $(PROD_OBJ) packaging/libckring.map
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libckring.so.1 \
	  -Wl,--version-script=packaging/libckring.map -o $@ $(PROD_OBJ) \
	  $(LDFLAGS) $(PROD_LIBS) $(XLDLIBS)

$(BUILD)/libckring-store.so: $(STORE_OBJ) $(BUILD)/libckring.so packaging/libckring-store.map
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libckring-store.so.1 \
	  -Wl,--version-script=packaging/libckring-store.map -o $@ $(STORE_OBJ) \
	  -L$(BUILD) -lckring $(LDFLAGS) $(STORE_LIBS) $(XLDLIBS)

$(BUILD)/libckring-fleet.a: $(FLEET_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/libckring-fleet.so: $(FLEET_OBJ) $(BUILD)/libckring-store.so packaging/libckring-fleet.map
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libckring-fleet.so.1 \
	  -Wl,--version-script=packaging/libckring-fleet.map -o $@ $(FLEET_OBJ) \
	  -L$(BUILD) -lckring-store -lckring $(LDFLAGS) $(FLEET_LIBS) $(STORE_LIBS) $(XLDLIBS)

# The fleet library: public headers only, and libpq's.
$(FLEET_OBJ): $(BUILD)/fleet/%.o: fleet/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -D_GNU_SOURCE -Iinclude $(PG_CPPFLAGS) $(CFLAGS) -fvisibility=hidden -c -o $@ $<

$(BUILD)/libckring-test.a: $(HOOK_OBJ)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/hooks/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$< [hooks])
	$(Q)$(CC) $(CPPFLAGS) -DCKR_TEST_HOOKS $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: CPPFLAGS += -DCKR_TEST_HOOKS

# The libraries' objects: only what the headers mark CKR_API is exported.
$(LIB_OBJ): CFLAGS += -fvisibility=hidden

# bench/ sees the public headers only: a bench file that includes an internal
# header does not compile.
$(BUILD)/bench/%.o: bench/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -D_GNU_SOURCE -Iinclude $(CFLAGS) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Tools: public headers only (no -I.), so an internal include fails to build.
$(BUILD)/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(TOOL_CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/demo/%.o: demo/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(TOOL_CPPFLAGS) $(CFLAGS) -c -o $@ $<

## tools: build ckring-flusher, ckring-admin, ckring-inspect, ckring-load, ckring-bench, ckring-demo
tools: $(TOOLS)

$(PROD_TOOLS): $(BUILD)/bin/%: $(BUILD)/tools/%.o $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libckring.a $(LDFLAGS) $(PROD_LIBS) $(XLDLIBS)

# Per-tool extra objects and libraries (issue 16): the flusher's metrics
# exporter (libmicrohttpd), ckring-admin's JSON reader (jansson).
FLUSHER_EXTRA := $(BUILD)/tools/metrics_http.o -lmicrohttpd
$(BUILD)/bin/ckring-flusher $(BUILD)/hooks/bin/ckring-flusher: $(BUILD)/tools/metrics_http.o
$(BUILD)/bin/ckring-flusher $(BUILD)/hooks/bin/ckring-flusher: TOOL_EXTRA = $(FLUSHER_EXTRA)
$(BUILD)/bin/ckring-admin: TOOL_EXTRA = -ljansson

$(FLEET_TOOLS): $(BUILD)/bin/%: $(BUILD)/tools/%.o $(BUILD)/libckring-fleet.a \
  $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(TOOL_EXTRA) $(BUILD)/libckring-fleet.a $(BUILD)/libckring-store.a \
	  $(BUILD)/libckring.a $(LDFLAGS) $(FLEET_LIBS) $(LDLIBS) -lm

$(filter-out $(PROD_TOOLS) $(FLEET_TOOLS),$(TOOL_BINS)): $(BUILD)/bin/%: $(BUILD)/tools/%.o \
  $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(TOOL_EXTRA) $(BUILD)/libckring-store.a $(BUILD)/libckring.a \
	  $(LDFLAGS) $(LDLIBS) -lm

$(DEMO_BINS): $(BUILD)/bin/%: $(BUILD)/demo/%.o $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libckring-store.a $(BUILD)/libckring.a \
	  $(LDFLAGS) $(LDLIBS) -lm

# The tools linked against the hooks build (crash points for the tests).
HOOK_TOOLS := $(BUILD)/hooks/bin/ckring-flusher

$(HOOK_TOOLS): $(BUILD)/hooks/bin/%: $(BUILD)/tools/%.o $(BUILD)/libckring-test.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@ [hooks])
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(TOOL_EXTRA) $(BUILD)/libckring-test.a $(LDFLAGS) $(LDLIBS) -lm

$(BUILD)/bin/ckring-bench: $(BENCH_OBJ) $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(BENCH_OBJ) $(BUILD)/libckring-store.a $(BUILD)/libckring.a \
	  $(LDFLAGS) $(LDLIBS) -lsqlite3 -lm

## bench-tools: build the push probe (build/bench/ckring-push-probe)
bench-tools: $(BENCH_TOOLS)

$(BUILD)/bench/ckring-push-probe: $(BUILD)/bench/push_probe.o $(BUILD)/bench/clock.o \
  $(BUILD)/bench/hist.o $(BUILD)/bench/sys.o $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lm

# Helpers of the shipping tests (tests/fleet/): against libpq and the libraries.
FLEET_HELPERS := $(BUILD)/tests/fleet/pgverify $(BUILD)/tests/fleet/fleet_drive

$(FLEET_HELPERS): $(BUILD)/tests/fleet/%: tests/fleet/%.c $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(PG_CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libckring-store.a \
	  $(BUILD)/libckring.a $(LDFLAGS) $(FLEET_LIBS) $(LDLIBS)



# The shipping benchmark's program (bench/ship_bench.sh): public headers, libpq.
SHIP_BENCH := $(BUILD)/bench/ship_bench
$(SHIP_BENCH): bench/ship_bench.c $(BUILD)/libckring-store.a $(BUILD)/libckring.a
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(TOOL_CPPFLAGS) $(PG_CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libckring-store.a \
	  $(BUILD)/libckring.a $(LDFLAGS) $(FLEET_LIBS) $(LDLIBS)

## bench-ship: ckring.ship vs pg.copy, push -> REPLICATED at 1 k/s, drain with and without a shipper
bench-ship: deps
	$(Q)$(MAKE) --no-print-directory tools $(SHIP_BENCH) $(FLEET_HELPERS)
	$(Q)BUILD=$(BUILD) bash bench/ship_bench.sh

# The API-sequence test (tests/apiseq/): a driver with its model and checker,
# and the worker processes it drives; both link the hooks build.
APISEQ_MODS := model procs check
APISEQ_OBJ  := $(APISEQ_MODS:%=$(BUILD)/tests/apiseq/%.o)
APISEQ      := $(BUILD)/tests/apiseq/apiseq-driver $(BUILD)/tests/apiseq/apiseq-worker

$(BUILD)/tests/apiseq/apiseq-driver: $(BUILD)/tests/apiseq/driver.o $(APISEQ_OBJ) \
		$(BUILD)/tests/helpers/testutil.o $(BUILD)/libckring-test.a
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(BUILD)/libckring-test.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/apiseq/apiseq-worker: $(BUILD)/tests/apiseq/worker.o $(BUILD)/libckring-test.a
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libckring-test.a $(LDFLAGS) $(LDLIBS)

tests: lib $(TESTS) $(TOOLS) $(HOOK_TOOLS) $(BUILD)/tests/crc32c_check $(FLEET_HELPERS) $(SHIP_BENCH) \
  $(APISEQ)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_HELPER_OBJ) $(BUILD)/libckring-test.a
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(TEST_HELPER_OBJ) $(BUILD)/libckring-test.a \
	  $(LDFLAGS) $(LDLIBS) -lcmocka -lm

## test: install missing packages, build, run every test
test: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) bash tests/run.sh $(TESTS) $(TEST_SCRIPTS)

check: test

## asan: build in build-asan/ with ASan+UBSan and run every test
asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan OPT='-O1 -g' \
	  XCFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' \
	  XLDFLAGS='-fsanitize=address,undefined' test

## tsan: build in build-tsan/ with ThreadSanitizer and run the concurrent tests
tsan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-tsan CC=clang OPT='-O1 -g' \
	  XCFLAGS='-fsanitize=thread' XLDFLAGS='-fsanitize=thread' \
	  $(addprefix build-tsan/tests/,$(TSAN_TESTS))
	$(Q)BUILD=build-tsan bash tests/run.sh $(addprefix build-tsan/tests/,$(TSAN_TESTS))

## model: verify the Promela models of the lane and run protocols with spin
model: deps
	$(Q)bash ring/model/run.sh

## demo: the recovery demo (the main job) on a default segment and database
demo: deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)$(BUILD)/bin/ckring-demo

## demo-fleet: the two-host story (ship to PostgreSQL, lose a host, recover on another), narrated
demo-fleet: deps
	$(Q)$(MAKE) --no-print-directory tools $(FLEET_HELPERS)
	$(Q)BUILD=$(BUILD) bash demo/demo-fleet.sh

## bench: build and run the benchmark harness, ckring-bench (BENCHMARKS.md)
bench: deps
	$(Q)$(MAKE) --no-print-directory tools bench-tools
	$(Q)$(BUILD)/bin/ckring-bench

## go-test: the Go binding's checks only (gofmt, go vet, go test -race)
go-test: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) bash $(GO_TEST_SCRIPT)

## bench-go: the cost the Go binding adds to a 128 B push, beside the C push
bench-go: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) bash bindings/go/bench.sh

## go-example: the Go example: an executor killed mid-run, a host recovers
go-example: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)BUILD=$(BUILD) bash examples/go/try.sh

DURATION     ?= 600
SEED         ?=
FUZZ_SECONDS ?= 20
STEPS        ?= 1000000

## torture: crash torture against the real tools for DURATION s (SEED= replays)
torture: deps
	$(Q)$(MAKE) --no-print-directory tools $(HOOK_TOOLS)
	$(Q)BUILD=$(BUILD) bash tests/torture/torture.sh --duration $(DURATION) $(if $(SEED),--seed $(SEED))

ADMIN_SECONDS ?= 300

## admin-torture: operator actions under flusher crashes for ADMIN_SECONDS s, the crash torture beside (SEED= replays)
admin-torture: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) CKR_ADMIN_SECONDS=$(ADMIN_SECONDS) \
	  CKR_ADMIN_TORTURE_SECONDS=$(ADMIN_SECONDS) $(if $(SEED),CKR_SEED=$(SEED)) \
	  $(BUILD)/tests/test_admin_crash

## pg-torture: shipper kills and PostgreSQL restarts under load, verified row by row (KILLS=50 RESTARTS=5 SEED=)
KILLS    ?= 50
RESTARTS ?= 5
pg-torture: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) bash tests/pg_torture.sh --kills $(KILLS) --restarts $(RESTARTS) $(if $(SEED),--seed $(SEED))

## fuzz-api: the API-sequence test: STEPS random API calls and faults across processes checked against a model (SEED= replays)
fuzz-api: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)BUILD=$(BUILD) STEPS=$(STEPS) SEED=$(SEED) $(BUILD)/tests/apiseq/apiseq-driver

## fuzz: libFuzzer targets (clang, ASan+UBSan), FUZZ_SECONDS each
fuzz: deps
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh

## faults: fault injection (LD_PRELOAD shim) against the real tools
faults: deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)BUILD=$(BUILD) bash tests/faults/run.sh

## install: install libraries, header, pkg-config file, tools, man pages
install: all
	$(Q)bash packaging/install.sh "$(DESTDIR)" "$(PREFIX)" "$(BUILD)"

## uninstall: remove what install put under DESTDIR/PREFIX
uninstall:
	$(Q)bash packaging/install.sh --uninstall "$(DESTDIR)" "$(PREFIX)"

## clean: remove build output
clean:
	$(Q)rm -rf build build-asan build-tsan

-include $(LIB_OBJ:.o=.d) $(HOOK_OBJ:.o=.d) $(FLEET_OBJ:.o=.d) $(patsubst %.c,$(BUILD)/%.d,$(wildcard tools/*.c demo/*.c)) \
  $(BENCH_OBJ:.o=.d) $(BUILD)/bench/push_probe.d $(BUILD)/tests/crc32c_check.d \
  $(TEST_SRC:%.c=$(BUILD)/%.d) $(TEST_HELPER_OBJ:.o=.d) \
  $(APISEQ_OBJ:.o=.d) $(BUILD)/tests/apiseq/driver.d $(BUILD)/tests/apiseq/worker.d
