# sandbox/: the sandbox library (libfaassandbox.a), which the provisioner
# and the agent link, and the faas-sandbox tool.
SANDBOX_SRCS := sandbox/sandbox.c sandbox/cgroup.c sandbox/rootfs.c \
                sandbox/stem.c \
                sandbox/seccomp.c sandbox/sandbox_init.c sandbox/zygote.c
SANDBOX_OBJS := $(SANDBOX_SRCS:%.c=$(OBJS)/%.o)

$(LIBFAASSANDBOX): $(SANDBOX_OBJS)
	$(AR) rcs $@ $^

FAAS_LIBS += $(LIBFAASSANDBOX)

$(OBJS)/faas-sandbox: $(OBJS)/sandbox/sandbox_tool.o $(LIBFAASSANDBOX) \
                      $(LIBFAASCOMMON)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBFAASSANDBOX) $(LIBFAASCOMMON) \
	    $(call lib,jansson libseccomp) -lcap -lpthread

BINS += $(OBJS)/faas-sandbox

# bench/sandbox: the cold-start and freeze/thaw benchmark (run.sh drives it).
$(OBJS)/faas-sandbox-bench: $(OBJS)/bench/sandbox/sandbox_bench.o \
                            $(LIBFAASSANDBOX) $(LIBFAASCOMMON)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBFAASSANDBOX) $(LIBFAASCOMMON) \
	    $(call lib,jansson libseccomp) -lcap -lpthread

BINS += $(OBJS)/faas-sandbox-bench

# The Python zygote's C extension (zygote.c, zygote_ext.c): the child side
# of the sandbox library, loaded into /usr/bin/python3, so never built with
# the sanitizers (SANFLAGS) even in objs/asan/.
ZYGOTE_EXT_SRCS := sandbox/zygote_ext.c sandbox/sandbox_init.c \
                   sandbox/rootfs.c
$(OBJS)/_faas_zygote.so: $(ZYGOTE_EXT_SRCS) sandbox/sandbox_int.h \
                         sandbox/zygote_int.h sandbox/sandbox.h
	@mkdir -p $(dir $@)
	@echo "  CCLD $@"
	@$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC \
	    -shared -fvisibility=hidden -Icommon -Isandbox \
	    $(shell pkg-config --cflags python3 jansson) \
	    -o $@ $(ZYGOTE_EXT_SRCS)

BINS += $(OBJS)/_faas_zygote.so
