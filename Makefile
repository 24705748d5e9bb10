# Postroom build. `make` builds the four programs; `make test` runs every test;
# `make run` starts the demo instance. BUILD selects the output tree so that
# several builds (plain, sanitizer, fuzz) can live side by side.

BUILD   ?= build
SAN     ?= 0
FUZZ    ?= 0
CC      ?= cc
PYTHON  ?= /usr/bin/python3
FUZZ_SECONDS ?= 8

CFLAGS_STD  = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
              -Wno-unused-parameter -g -pthread -MMD -MP
ifeq ($(SAN),1)
OPT     = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
          -fno-sanitize-recover=undefined
LDSAN   = -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
CC      = clang
OPT     = -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
          -DFUZZING_BUILD
LDSAN   = -fsanitize=address,undefined
else
OPT     = -O2
LDSAN   =
endif
CFLAGS  += $(CFLAGS_STD) $(OPT)
LDLIBS  = -lev -llmdb -lsodium -lssl -lcrypto -lz -lcares -lpthread

# Each directory compiles with only the include paths it may use
# (see tests/check_deps.sh for the enforcement of the same rule).
INC_common  = -Icommon
INC_store   = -Icommon -Istore
INC_daemon  = -Icommon -Istore

COMMON_SRC  := $(wildcard common/*.c)
STORE_SRC   := $(wildcard store/*.c)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
STORE_OBJ   := $(STORE_SRC:%.c=$(BUILD)/obj/%.o)
LIBCOMMON   := $(BUILD)/lib/libcommon.a
LIBSTORE    := $(BUILD)/lib/libstore.a

# A program is built as soon as its directory has code.
PROGDIRS    := $(foreach d,smtpd pop3d imapd mailctl mtad,$(if $(wildcard $(d)/*.c),$(d)))
PROGS       := $(PROGDIRS:%=$(BUILD)/bin/%)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps deps-test test unit unit-bins fuzz fuzz-bins proto run clean bench valgrind
all: deps $(PROGS)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/obj/common/%.o: common/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_common) -c $< -o $@
$(BUILD)/obj/store/%.o: store/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(INC_store) -c $< -o $@
define prog_rules
$(1)_SRC := $$(wildcard $(1)/*.c)
$(1)_OBJ := $$($(1)_SRC:%.c=$$(BUILD)/obj/%.o)
$$(BUILD)/obj/$(1)/%.o: $(1)/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(INC_daemon) -I$(1) -c $$< -o $$@
$$(BUILD)/bin/$(1): $$($(1)_OBJ) $$(LIBSTORE) $$(LIBCOMMON)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDSAN) -o $$@ $$($(1)_OBJ) $$(LIBSTORE) $$(LIBCOMMON) $$(LDLIBS)
endef
$(foreach d,smtpd pop3d imapd mailctl mtad,$(eval $(call prog_rules,$(d))))

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBSTORE): $(STORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# Unit tests: one cmocka program per tests/unit/test_*.c. A test may use
# daemon parser sources: list them in a "// LINK: dir/file.c ..." comment.
$(BUILD)/tests/%: tests/unit/%.c $(LIBSTORE) $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Icommon -Istore -Ismtpd -Ipop3d -Iimapd -Imtad -o $@ $< \
	  $(shell sed -n 's|^// LINK: ||p' $<) $(LIBSTORE) $(LIBCOMMON) $(LDSAN) -lcmocka $(LDLIBS)

# Everything `make test` does runs with the sanitizer build.
SANBUILD = build/san
test: deps-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory BUILD=$(SANBUILD) SAN=1 all unit-bins
	@tests/check_deps.sh
	@$(MAKE) --no-print-directory BUILD=$(SANBUILD) SAN=1 unit
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory proto

unit-bins: $(UNIT_BIN)
unit: $(UNIT_BIN)
	@tests/run_unit.sh $(UNIT_BIN)

fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz FUZZ=1 fuzz-bins
	@tests/run_fuzz.sh build/fuzz $(FUZZ_SECONDS)

FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/fuzz/%)
fuzz-bins: $(FUZZ_BIN)
build/fuzz/fuzz/%: tests/fuzz/%.c $(LIBSTORE) $(LIBCOMMON)
	@mkdir -p $(@D)
	clang $(CFLAGS_STD) -O1 -fsanitize=fuzzer,address,undefined -Icommon -Istore \
	  -Ismtpd -Ipop3d -Iimapd -Imtad -o $@ $< \
	  $(foreach f,$(shell sed -n 's|^// LINK: ||p' $<),$(f)) \
	  $(LIBSTORE) $(LIBCOMMON) $(LDLIBS)

# Protocol tests drive the sanitizer-built daemons with real clients.
proto:
	@POSTROOM_BIN=$(abspath $(SANBUILD)/bin) tests/run_proto.sh

# The end-to-end suites with every daemon and mailctl under valgrind (plain
# build, since valgrind cannot run ASan binaries). Slow (~15 min), so not part
# of `make test`; load and timing tests (tests/proto/abuse) are left out.
VALGRIND = valgrind --error-exitcode=99 --leak-check=full \
           --errors-for-leak-kinds=definite --track-fds=no -q
VALGRIND_SUITES ?= proto/smtp proto/pop3 proto/mailctl proto/imap \
           proto/imap_ext proto/imap_ext2
valgrind: all
	@POSTROOM_BIN=$(abspath $(BUILD)/bin) POSTROOM_WRAP="$(VALGRIND)" \
	  PROTO_SUITES="$(VALGRIND_SUITES)" tests/run_proto.sh

run: all
	@scripts/demo.sh $(BUILD)/bin

bench: all
	@bench/run_all.sh $(BUILD)/bin

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
