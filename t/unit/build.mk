# t/unit/: every <name>_test.c becomes $(OBJS)/t/<name>_test, linked with all
# the project's libraries. t/unit/<name>.t runs the AddressSanitizer build.
UNIT_SRCS := $(sort $(wildcard t/unit/*_test.c))
UNIT_BINS := $(UNIT_SRCS:t/unit/%.c=$(OBJS)/t/%)
ALL_PKG_LIBS = $(call lib,$(PKGS)) -lcap -lm

$(OBJS)/t/%_test: $(OBJS)/t/unit/%_test.o $(FAAS_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(FAAS_LIBS) -Wl,--end-group \
	    $(ALL_PKG_LIBS)

TESTS += $(UNIT_BINS)
