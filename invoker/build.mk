# invoker/: libfaasinvoker, the nginx-independent invocation core. The nginx
# module compiles the same sources itself (ngx_faas_module/config).
INVOKER_SRCS := $(sort $(wildcard invoker/*.c))
INVOKER_OBJS := $(INVOKER_SRCS:%.c=$(OBJS)/%.o)

$(LIBFAASINVOKER): $(INVOKER_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

FAAS_LIBS += $(LIBFAASINVOKER)
