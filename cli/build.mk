# cli/: faasctl, the command-line client (libcurl, jansson, libjwt, libzip).
FAASCTL_SRCS := $(sort $(wildcard cli/*.c))
FAASCTL_OBJS := $(FAASCTL_SRCS:%.c=$(OBJS)/%.o)

$(OBJS)/faasctl: $(FAASCTL_OBJS) $(OBJS)/libfaasproto.a $(OBJS)/libfaascommon.a
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(FAASCTL_OBJS) $(OBJS)/libfaasproto.a \
	    $(OBJS)/libfaascommon.a \
	    $(call lib,libcurl jansson libjwt libzip openssl)

BINS += $(OBJS)/faasctl
