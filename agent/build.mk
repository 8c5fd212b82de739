# agent/: the faas-agent daemon and the faas-invoke client tool.
# faas-agent needs the sandbox library (provisioner/sandbox.mk) and the blob
# store (common/blob.c); until both exist only faas-invoke is built.
AGENT_SRCS := agent/main.c agent/server.c agent/invoke.c agent/logs.c \
              agent/auth.c
AGENT_OBJS := $(AGENT_SRCS:%.c=$(OBJS)/%.o)
AGENT_LIBS = $(call lib,$(PKGS)) -lcap -lm

$(OBJS)/faas-agent: $(AGENT_OBJS) $(OBJS)/libfaassandbox.a \
                    $(OBJS)/libfaasproto.a $(OBJS)/libfaascommon.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(AGENT_OBJS) -Wl,--start-group \
	    $(OBJS)/libfaassandbox.a $(OBJS)/libfaasproto.a \
	    $(OBJS)/libfaascommon.a -Wl,--end-group \
	    $(AGENT_LIBS)

$(OBJS)/faas-invoke: $(OBJS)/agent/invoke_tool.o $(OBJS)/libfaasproto.a \
                     $(OBJS)/libfaascommon.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $< $(OBJS)/libfaasproto.a $(OBJS)/libfaascommon.a \
	    $(AGENT_LIBS)

BINS += $(OBJS)/faas-invoke
ifneq ($(wildcard provisioner/sandbox.mk),)
ifneq ($(wildcard common/blob.c),)
BINS += $(OBJS)/faas-agent
endif
endif
