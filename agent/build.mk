# agent/: the faas-agent daemon and the faas-invoke client tool.
# faas-agent links the sandbox library (sandbox/) to thaw and freeze.
AGENT_SRCS := agent/main.c agent/server.c agent/invoke.c agent/request.c \
              agent/answer.c agent/logs.c agent/auth.c agent/tls.c \
              agent/guard.c \
              agent/metrics.c
AGENT_OBJS := $(AGENT_SRCS:%.c=$(OBJS)/%.o)
AGENT_LIBS = $(call lib,$(PKGS)) -lcap -lm

$(OBJS)/faas-agent: $(AGENT_OBJS) $(LIBFAASSANDBOX) $(LIBFAASPROTO) \
                    $(LIBFAASCOMMON)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(AGENT_OBJS) -Wl,--start-group \
	    $(LIBFAASSANDBOX) $(LIBFAASPROTO) $(LIBFAASCOMMON) -Wl,--end-group \
	    $(AGENT_LIBS)

$(OBJS)/faas-invoke: $(OBJS)/agent/invoke_tool.o $(LIBFAASPROTO) \
                     $(LIBFAASCOMMON)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(LIBFAASPROTO) $(LIBFAASCOMMON) $(AGENT_LIBS)

BINS += $(OBJS)/faas-agent $(OBJS)/faas-invoke
