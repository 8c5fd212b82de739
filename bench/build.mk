# bench/: faas-loadgen, the HTTP load generator of the benchmarks
# (bench/loadgen/loadgen.c: epoll, keep-alive, TLS, closed and open loop).
LOADGEN_OBJS := $(OBJS)/bench/loadgen/loadgen.o

$(OBJS)/faas-loadgen: $(LOADGEN_OBJS)
	@echo "  LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(call lib,openssl) -lpthread -lm

BINS += $(OBJS)/faas-loadgen
