# common/: code shared by the daemons, built as one static library.
COMMON_SRCS := $(sort $(wildcard common/*.c))
COMMON_OBJS := $(COMMON_SRCS:%.c=$(OBJS)/%.o)

$(LIBFAASCOMMON): $(COMMON_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

FAAS_LIBS += $(LIBFAASCOMMON)
