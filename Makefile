# Top-level build. Each component keeps its rules in <dir>/build.mk, so the
# folders stay independent; this file only holds what they share.
#
#   make                 everything into objs/
#   make SAN=1           the same with AddressSanitizer + UBSan into objs/asan/
#
# build.sh drives this file; the nginx module is built by build.sh itself,
# because it needs nginx's own configure step.

SAN ?= 0
ifeq ($(SAN),1)
OBJS ?= objs/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer
else
OBJS ?= objs
SANFLAGS :=
endif

CC ?= cc
PKGS := hiredis jansson libcurl openssl libzip libseccomp libmicrohttpd libuv \
        libprotobuf-c libjwt libmariadb libmongoc-1.0 libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))

CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC \
          $(SANFLAGS) -Icommon -Iproto -Iinvoker -Isandbox -I$(OBJS)/proto \
          $(PKG_CFLAGS)
LDFLAGS := $(SANFLAGS)

lib = $(shell pkg-config --libs $(1))

# The libraries, named here because a build.mk uses another folder's library
# as a prerequisite, which make expands when it reads the rule.
LIBFAASCOMMON := $(OBJS)/libfaascommon.a
LIBFAASPROTO := $(OBJS)/libfaasproto.a
LIBFAASINVOKER := $(OBJS)/libfaasinvoker.a
LIBFAASSANDBOX := $(OBJS)/libfaassandbox.a

# Components append their binaries (daemons, tools, test programs) here.
BINS :=
TESTS :=

.PHONY: all clean
all: bins

# The libraries' rules first: their variables (PROTO_H...) are used by the
# programs' rules, which make expands as it reads them.
LIB_MKS := proto/build.mk common/build.mk invoker/build.mk sandbox/build.mk
include $(LIB_MKS)
include $(sort $(filter-out $(LIB_MKS),$(wildcard */build.mk)))
include $(sort $(wildcard t/*/build.mk))

bins: $(BINS) $(TESTS)

$(OBJS)/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(OBJS) -name '*.d' 2>/dev/null)

clean:
	rm -rf objs
