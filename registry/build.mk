# registry/: the faas-registry daemon.
REGISTRY_SRCS := $(sort $(wildcard registry/*.c))
REGISTRY_OBJS := $(REGISTRY_SRCS:%.c=$(OBJS)/%.o)
REGISTRY_BIN := $(OBJS)/faas-registry

$(REGISTRY_BIN): $(REGISTRY_OBJS) $(FAAS_LIBS)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(REGISTRY_OBJS) -Wl,--start-group $(FAAS_LIBS) \
	    -Wl,--end-group $(call lib,hiredis jansson libzip libmicrohttpd \
	    libprotobuf-c libmariadb libmongoc-1.0 openssl libcurl libsystemd) \
	    -lpthread

BINS += $(REGISTRY_BIN)

# t/unit/registry_test links the registry's objects (all but main.o); this
# explicit rule takes precedence over t/unit's pattern rule.
REGISTRY_LIB_OBJS := $(filter-out $(OBJS)/registry/main.o,$(REGISTRY_OBJS))

$(OBJS)/t/registry_test: $(OBJS)/t/unit/registry_test.o $(REGISTRY_LIB_OBJS) \
                         $(FAAS_LIBS)
	@mkdir -p $(dir $@)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(REGISTRY_LIB_OBJS) -Wl,--start-group \
	    $(FAAS_LIBS) -Wl,--end-group $(call lib,$(PKGS)) -lpthread
