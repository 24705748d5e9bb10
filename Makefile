# Postroom build. `make` builds the programs; `make check` runs the unit tests
# (fast); `make test` runs every test; `make run` starts the demo instance;
# `make install` / `make uninstall` (PREFIX, DESTDIR). BUILD selects the output
# tree so that several builds (plain, sanitizer, fuzz) can live side by side.
# `make deps` installs (or names) the Debian packages; `make run` and
# `make test` call it first, so they work on a fresh machine.

BUILD   ?= build
SAN     ?= 0
FUZZ    ?= 0
CC      ?= cc
FUZZ_CC ?= clang
PYTHON  ?= /usr/bin/python3
FUZZ_SECONDS ?= 8

CFLAGS_STD  = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
              -Wno-unused-parameter -g -pthread -MMD -MP
ifeq ($(SAN),1)
OPT     = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
          -fno-sanitize-recover=undefined
# The sanitizer build is the one the tests run: it has their crash hooks.
OPT     += -DPOSTROOM_TEST_HOOKS
LDSAN   = -fsanitize=address,undefined
else ifeq ($(FUZZ),1)
CC      = $(FUZZ_CC)
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
# (tests/check_deps.sh enforces the same rule on the #include lines).
INC_common  = -Icommon
INC_store   = -Icommon -Istore
INC_daemon  = -Icommon -Istore

COMMON_SRC  := $(wildcard common/*.c)
STORE_SRC   := $(wildcard store/*.c)
COMMON_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
STORE_OBJ   := $(STORE_SRC:%.c=$(BUILD)/obj/%.o)
LIBCOMMON   := $(BUILD)/lib/libcommon.a
LIBSTORE    := $(BUILD)/lib/libstore.a

# The programs. Add a new one here: it is built (and installed) as soon as its
# directory has code. SBIN_PROGRAMS go to $(SBINDIR), the others to $(BINDIR).
PROGRAMS    := smtpd pop3d imapd mtad mailctl
PROGDIRS    := $(foreach d,$(PROGRAMS),$(if $(wildcard $(d)/*.c),$(d)))
PROGS       := $(PROGDIRS:%=$(BUILD)/bin/%)

# Per-daemon libraries of pure parsers (no I/O, no event loop): the daemon
# links its library, and the unit tests and fuzz targets link the same
# objects. The files are listed by name on purpose: a parser joins its
# library only when it is pure. <dir>_LIB names the library of <dir>.
imapd_LIB     := imap
imapd_PARSERS := imapd/imap_parser.c imapd/imap_fetch_items.c imapd/imap_search.c \
                 imapd/imap_seqset.c imapd/imap_modseq.c imapd/imap_esearch.c \
                 imapd/imap_list_ext.c imapd/imap_utf7.c
smtpd_LIB     := smtp
smtpd_PARSERS := smtpd/smtp_parse.c
pop3d_LIB     := pop3
pop3d_PARSERS := pop3d/pop3_parse.c
mtad_LIB      := mtad
mtad_PARSERS  := mtad/smtp_reply.c mtad/dsn.c mtad/mime7.c
PARSER_DIRS   := $(foreach d,$(PROGDIRS),$(if $($(d)_LIB),$(d)))
PARSER_LIBS   := $(foreach d,$(PARSER_DIRS),$(BUILD)/lib/lib$($(d)_LIB).a)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)

# Installation. The daemons and mailctl go to sbin: none of them is for an
# ordinary user (the daemons are started by systemd, mailctl is run by the
# administrator as the postroom user), which is what sbin is for (FHS; Postfix
# does the same with postfix and postmap). The systemd units name
# /usr/local/bin in their ExecStart; `install` writes the real path instead.
PREFIX      ?= /usr/local
SBINDIR     ?= $(PREFIX)/sbin
SYSCONFDIR  ?= /etc
CONFDIR     ?= $(SYSCONFDIR)/postroom
UNITDIR     ?= $(PREFIX)/lib/systemd/system
UNITS       := $(wildcard etc/systemd/*.service)
DESTDIR     ?=

.PHONY: all deps deps-test check test unit unit-bins fuzz fuzz-bins proto proto-bins \
        run clean bench valgrind install uninstall install-test print-programs
all: $(PROGS)

# The programs this tree builds (for scripts).
print-programs:
	@echo $(PROGDIRS)

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
$(1)_PLIB := $(if $($(1)_LIB),$$(BUILD)/lib/lib$($(1)_LIB).a)
$(1)_SRC  := $$(filter-out $$($(1)_PARSERS),$$(wildcard $(1)/*.c))
$(1)_OBJ  := $$($(1)_SRC:%.c=$$(BUILD)/obj/%.o)
$$(BUILD)/obj/$(1)/%.o: $(1)/%.c
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(INC_daemon) -I$(1) -c $$< -o $$@
ifneq ($($(1)_LIB),)
$$(BUILD)/lib/lib$($(1)_LIB).a: $$($(1)_PARSERS:%.c=$$(BUILD)/obj/%.o)
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endif
$$(BUILD)/bin/$(1): $$($(1)_OBJ) $$($(1)_PLIB) $$(LIBSTORE) $$(LIBCOMMON)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$(LDSAN) -o $$@ $$($(1)_OBJ) $$($(1)_PLIB) $$(LIBSTORE) \
	  $$(LIBCOMMON) $$(LDLIBS)
endef
$(foreach d,$(PROGDIRS),$(eval $(call prog_rules,$(d))))

$(LIBCOMMON): $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBSTORE): $(STORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# Unit tests: one cmocka program per tests/unit/test_*.c, linked against the
# parser libraries and libstore/libcommon (the linker takes only what a test
# uses). Daemon headers are on the include path for the parser tests.
TEST_INC  = -Icommon -Istore $(PARSER_DIRS:%=-I%)
TEST_LIBS = $(PARSER_LIBS) $(LIBSTORE) $(LIBCOMMON)
# A white-box test of daemon code that is not a pure parser names the
# sources it links here (and is listed in check_deps.sh's WHITEBOX).
test_smtp_junk_SRCS := smtpd/smtp_submit.c smtpd/smtp_junk.c smtpd/smtp_checks.c
.SECONDEXPANSION:
$(BUILD)/tests/%: tests/unit/%.c $(TEST_LIBS) $$($$*_SRCS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TEST_INC) -o $@ $< $($*_SRCS) $(TEST_LIBS) $(LDSAN) \
	  -lcmocka $(LDLIBS)

# Everything `make test` runs uses the sanitizer build, except the install
# test (plain build) and fuzzing (its own build with libFuzzer).
SANBUILD = build/san
SANMAKE  = $(MAKE) --no-print-directory BUILD=$(SANBUILD) SAN=1
test: deps-test
	@$(MAKE) --no-print-directory all
	@$(SANMAKE) all unit-bins
	@tests/check_deps.sh
	@$(SANMAKE) unit
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory install-test
	@$(MAKE) --no-print-directory proto

# The fast check: module boundaries and the unit tests (sanitizer build).
check:
	@tests/check_deps.sh
	@$(SANMAKE) unit

unit-bins: $(UNIT_BIN)
unit: $(UNIT_BIN)
	@tests/run_unit.sh $(UNIT_BIN)

fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz FUZZ=1 fuzz-bins
	@tests/run_fuzz.sh build/fuzz $(FUZZ_SECONDS)

# Fuzz targets link the parser libraries of the FUZZ=1 build (with coverage).
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/fuzz/%)
fuzz-bins: $(FUZZ_BIN)
build/fuzz/fuzz/%: tests/fuzz/%.c $(TEST_LIBS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS_STD) -O1 -fsanitize=fuzzer,address,undefined $(TEST_INC) \
	  -o $@ $< $(TEST_LIBS) $(LDLIBS)

# Protocol tests drive the sanitizer-built daemons with real clients.
proto-bins:
	@$(SANMAKE) all
proto: proto-bins
	@POSTROOM_BIN=$(abspath $(SANBUILD)/bin) tests/run_proto.sh

# `make install` into a scratch root and `make uninstall` from it.
install-test: all
	@tests/run_install.sh

# The end-to-end suites with every daemon and mailctl under valgrind (plain
# build, since valgrind cannot run ASan binaries). Slow (~15 min), so not part
# of `make test`. Left out: the load and timing tests (tests/proto/abuse), the
# store crash tests (tests/proto/store) and the real-client and replay suites
# (tests/proto/imap/clients).
VALGRIND = valgrind --error-exitcode=99 --leak-check=full \
           --errors-for-leak-kinds=definite --track-fds=no -q
VALGRIND_SUITES ?= proto/smtp proto/pop3 proto/mailctl \
           proto/imap/core proto/imap/session proto/imap/extensions \
           proto/imap/idle proto/imap/compress proto/imap/condstore \
           proto/imap/esearch proto/imap/list
valgrind: all
	@POSTROOM_BIN=$(abspath $(BUILD)/bin) POSTROOM_WRAP="$(VALGRIND)" \
	  PROTO_SUITES="$(VALGRIND_SUITES)" tests/run_proto.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)/bin

bench: all
	@bench/run_all.sh $(BUILD)/bin

# Installs the programs, the sample config (as postroom.conf only when there
# is none: an existing config is never overwritten) and the systemd units.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR)
	install -m 755 $(PROGS) $(DESTDIR)$(SBINDIR)/
	install -m 644 etc/postroom.conf.sample $(DESTDIR)$(CONFDIR)/postroom.conf.sample
	@if [ -e $(DESTDIR)$(CONFDIR)/postroom.conf ]; then \
	  echo "install: keeping the existing $(DESTDIR)$(CONFDIR)/postroom.conf"; \
	else \
	  echo "install -m 644 etc/postroom.conf.sample $(DESTDIR)$(CONFDIR)/postroom.conf"; \
	  install -m 644 etc/postroom.conf.sample $(DESTDIR)$(CONFDIR)/postroom.conf; \
	fi
	@for u in $(UNITS); do \
	  echo "install $$u -> $(DESTDIR)$(UNITDIR)/$$(basename $$u)"; \
	  sed 's|/usr/local/bin/|$(SBINDIR)/|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done

# Removes what install put there; postroom.conf only if it is still the
# sample (an edited config and the data directory stay).
uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(SBINDIR)/%)
	rm -f $(UNITS:etc/systemd/%=$(DESTDIR)$(UNITDIR)/%)
	@if cmp -s etc/postroom.conf.sample $(DESTDIR)$(CONFDIR)/postroom.conf; then \
	  echo "rm -f $(DESTDIR)$(CONFDIR)/postroom.conf"; \
	  rm -f $(DESTDIR)$(CONFDIR)/postroom.conf; \
	elif [ -e $(DESTDIR)$(CONFDIR)/postroom.conf ]; then \
	  echo "uninstall: keeping the edited $(DESTDIR)$(CONFDIR)/postroom.conf"; \
	fi
	rm -f $(DESTDIR)$(CONFDIR)/postroom.conf.sample
	-@rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null || true

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
