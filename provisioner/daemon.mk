# faas-provisioner (the daemon) and faas-provision-tool (test/bench helper).
PROV_SRCS := provisioner/main.c provisioner/prov_redis.c provisioner/redis_uv.c \
             provisioner/leases.c \
             provisioner/queue.c provisioner/revision.c \
             provisioner/code_cache.c \
             provisioner/capacity.c provisioner/owner_limit.c \
             provisioner/sbx_table.c \
             provisioner/reaper.c provisioner/reconcile.c \
             provisioner/stem.c \
             provisioner/metrics.c
PROV_OBJS := $(PROV_SRCS:%.c=$(OBJS)/%.o)
PROV_AR = $(LIBFAASSANDBOX) $(LIBFAASPROTO) $(LIBFAASCOMMON)
PROV_LIBS = $(call lib,hiredis libuv libzip openssl jansson libcurl \
              libseccomp libprotobuf-c libsystemd libmicrohttpd) -lcap \
              -lpthread -lm

$(OBJS)/faas-provisioner: $(PROV_OBJS) $(PROV_AR)
	$(CC) $(LDFLAGS) -o $@ $(PROV_OBJS) -Wl,--start-group $(PROV_AR) \
	    -Wl,--end-group $(PROV_LIBS)

$(OBJS)/faas-provision-tool: $(OBJS)/provisioner/provision_tool.o \
                             $(OBJS)/provisioner/code_cache.o \
                             $(OBJS)/provisioner/metrics.o $(PROV_AR)
	$(CC) $(LDFLAGS) -o $@ $(OBJS)/provisioner/provision_tool.o \
	    $(OBJS)/provisioner/code_cache.o $(OBJS)/provisioner/metrics.o \
	    -Wl,--start-group $(PROV_AR) \
	    -Wl,--end-group $(PROV_LIBS)

BINS += $(OBJS)/faas-provisioner $(OBJS)/faas-provision-tool
