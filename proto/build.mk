# proto/: protobuf-c code is generated into $(OBJS)/proto, never committed.
PROTO_C := $(OBJS)/proto/faas.pb-c.c
PROTO_H := $(OBJS)/proto/faas.pb-c.h

$(PROTO_C) $(PROTO_H): proto/faas.proto
	@mkdir -p $(OBJS)/proto
	protoc-c --proto_path=proto --c_out=$(OBJS)/proto proto/faas.proto

$(OBJS)/proto/faas.pb-c.o: $(PROTO_C)
	$(CC) $(CFLAGS) -Wno-unused-parameter -c -o $@ $<
