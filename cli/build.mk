# cli/: faasctl, the command-line client (libcurl, jansson, libjwt, libzip).
FAASCTL_SRCS := $(sort $(wildcard cli/*.c))
FAASCTL_OBJS := $(FAASCTL_SRCS:%.c=$(OBJS)/%.o)

$(OBJS)/faasctl: $(FAASCTL_OBJS) $(LIBFAASPROTO) $(LIBFAASCOMMON)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $(FAASCTL_OBJS) $(LIBFAASPROTO) \
	    $(LIBFAASCOMMON) \
	    $(call lib,libcurl jansson libjwt libzip openssl)

BINS += $(OBJS)/faasctl
