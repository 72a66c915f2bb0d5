/* A stall meter to load into a Python target with ctypes (tests/scripts/hostile.py):
 * start_meter(path) starts a native thread, outside the GIL, that sleeps 1 ms at a time and
 * appends "MONOTONIC_SECONDS STALL_MS" to path for each wake-up more than 3 ms late. A
 * profiler that pauses the process stops this thread too, so the longest stall is the
 * longest pause as the program saw it, with no GIL contention in the measure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char out_path[4096];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run(void *unused) {
    (void)unused;
    FILE *out = fopen(out_path, "a");
    if (!out) return NULL;
    struct timespec ms = {0, 1000000};
    double last = now_s();
    for (;;) {
        nanosleep(&ms, NULL);
        double now = now_s();
        double late_ms = (now - last) * 1000.0 - 1.0;
        if (late_ms > 3.0) {
            fprintf(out, "%.6f %.3f\n", now, late_ms);
            fflush(out);
        }
        last = now;
    }
    return NULL;
}

int start_meter(const char *path) {
    pthread_t t;
    strncpy(out_path, path, sizeof out_path - 1);
    if (pthread_create(&t, NULL, run, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}
