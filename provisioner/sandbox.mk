# The sandbox library (libfaassandbox.a) and the faas-sandbox tool.
SANDBOX_SRCS := provisioner/sandbox.c provisioner/cgroup.c \
                provisioner/rootfs.c provisioner/seccomp.c \
                provisioner/sandbox_init.c provisioner/zygote.c
SANDBOX_OBJS := $(SANDBOX_SRCS:%.c=$(OBJS)/%.o)
LIBFAASSANDBOX := $(OBJS)/libfaassandbox.a

$(LIBFAASSANDBOX): $(SANDBOX_OBJS)
	$(AR) rcs $@ $^

FAAS_LIBS += $(LIBFAASSANDBOX)

$(OBJS)/faas-sandbox: $(OBJS)/provisioner/sandbox_tool.o $(LIBFAASSANDBOX) \
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
ZYGOTE_EXT_SRCS := provisioner/zygote_ext.c provisioner/sandbox_init.c \
                   provisioner/rootfs.c
$(OBJS)/_faas_zygote.so: $(ZYGOTE_EXT_SRCS) provisioner/sandbox_int.h \
                         provisioner/zygote_int.h provisioner/sandbox.h
	@mkdir -p $(dir $@)
	@echo "  CCLD $@"
	@$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC \
	    -shared -fvisibility=hidden -Icommon -Iprovisioner \
	    $(shell pkg-config --cflags python3 jansson) \
	    -o $@ $(ZYGOTE_EXT_SRCS)

BINS += $(OBJS)/_faas_zygote.so
