#include "clock.h"


static uint64_t
read_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


uint64_t
faas_now_ms(void)
{
    return read_us(CLOCK_REALTIME) / 1000;
}


uint64_t
faas_now_us(void)
{
    return read_us(CLOCK_REALTIME);
}


uint64_t
faas_mono_ms(void)
{
    return read_us(CLOCK_MONOTONIC) / 1000;
}


uint64_t
faas_mono_us(void)
{
    return read_us(CLOCK_MONOTONIC);
}


struct timespec
faas_deadline_after_ms(long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
