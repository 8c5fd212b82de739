# proto/: libfaasproto, every cross-process format: the protobuf-c code
# (generated into $(OBJS)/proto, never committed), Redis key names, the
# idle-entry format, the id validators and the status names. It sits above
# common/ (it reports errors with faas_error_t) and below every program.
PROTO_C := $(OBJS)/proto/faas.pb-c.c
PROTO_H := $(OBJS)/proto/faas.pb-c.h

$(PROTO_C) $(PROTO_H): proto/faas.proto
	@mkdir -p $(OBJS)/proto
	protoc-c --proto_path=proto --c_out=$(OBJS)/proto proto/faas.proto

$(OBJS)/proto/faas.pb-c.o: $(PROTO_C)
	$(CC) $(CFLAGS) -Wno-unused-parameter -c -o $@ $<

PROTOLIB_SRCS := $(sort $(wildcard proto/*.c))
PROTOLIB_OBJS := $(PROTOLIB_SRCS:%.c=$(OBJS)/%.o) $(OBJS)/proto/faas.pb-c.o

$(LIBFAASPROTO): $(PROTOLIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

FAAS_LIBS += $(LIBFAASPROTO)
