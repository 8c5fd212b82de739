# The sandbox library (libfaassandbox.a) and the faas-sandbox tool.
SANDBOX_SRCS := provisioner/sandbox.c provisioner/cgroup.c \
                provisioner/rootfs.c provisioner/seccomp.c \
                provisioner/sandbox_init.c
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
