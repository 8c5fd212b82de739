/*
 * Clocks. Wall-clock time for what is compared across hosts or stored
 * (heartbeats, records, timestamps); monotonic time for durations and
 * timeouts inside one process.
 */
#ifndef FAAS_CLOCK_H
#define FAAS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock milliseconds / microseconds since the Unix epoch. */
uint64_t faas_now_ms(void);
uint64_t faas_now_us(void);

/* Monotonic milliseconds / microseconds since an arbitrary point. */
uint64_t faas_mono_ms(void);
uint64_t faas_mono_us(void);

/* The wall-clock instant ms from now, for pthread_cond_timedwait. */
struct timespec faas_deadline_after_ms(long ms);

#endif
