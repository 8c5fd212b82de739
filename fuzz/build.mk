# fuzz/: libFuzzer targets, one file per decoder of bytes from another
# process or the network. Built only by `./build.sh fuzz` (clang, into
# objs/fuzz with -fsanitize=fuzzer-no-link,address,undefined on every
# object), never by the default build.
FUZZ_NAMES := $(sort $(basename $(notdir $(wildcard fuzz/*.c))))
FUZZ_BINS := $(FUZZ_NAMES:%=$(OBJS)/fuzz/%)
FUZZ_LIBS = $(call lib,$(PKGS)) -lm -lpthread
# Not the sandbox library: no target decodes with it.
FUZZ_FAAS_LIBS := $(LIBFAASINVOKER) $(LIBFAASPROTO) $(LIBFAASCOMMON)

# The daemons' objects a target needs besides the libraries.
FUZZ_OBJS_agent_request := $(OBJS)/agent/request.o
FUZZ_OBJS_agent_answer := $(OBJS)/agent/answer.o
FUZZ_OBJS_event := $(OBJS)/agent/request.o
FUZZ_OBJS_zipcheck := $(OBJS)/registry/zipcheck.o

$(OBJS)/fuzz/%.o: CFLAGS += -Ifuzz -Iagent -Iregistry

define fuzz_target
$(OBJS)/fuzz/$(1): $(OBJS)/fuzz/$(1).o $(FUZZ_OBJS_$(1)) $(FUZZ_FAAS_LIBS)
	@echo "  LD $$@"
	@$$(CC) $$(LDFLAGS) -fsanitize=fuzzer -o $$@ $$< $(FUZZ_OBJS_$(1)) \
	    -Wl,--start-group $(FUZZ_FAAS_LIBS) -Wl,--end-group $$(FUZZ_LIBS)
endef
$(foreach t,$(FUZZ_NAMES),$(eval $(call fuzz_target,$(t))))

.PHONY: fuzz-targets
fuzz-targets: $(FUZZ_BINS)
