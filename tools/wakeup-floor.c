/* The CPU a sampler pays only to sleep and wake at its rate, before reading anything: sleeps
 * RATE times a second for SECONDS seconds and prints its own CPU per tick (user + system,
 * from getrusage, as tools/fidelity.py measures profilers).
 *
 *     cc -O2 -o /tmp/wakeup-floor tools/wakeup-floor.c && /tmp/wakeup-floor 200 4
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

int main(int argc, char **argv) {
    int rate = argc > 1 ? atoi(argv[1]) : 200;
    double seconds = argc > 2 ? atof(argv[2]) : 4.0;
    if (rate <= 0 || seconds <= 0) {
        fprintf(stderr, "usage: wakeup-floor [RATE] [SECONDS]\n");
        return 2;
    }
    long ticks = (long)(rate * seconds);
    struct timespec period = {0, 1000000000L / rate};
    for (long i = 0; i < ticks; i++) nanosleep(&period, NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
                ru.ru_stime.tv_usec;
    printf("%ld ticks at %d Hz: %.1f us of CPU per tick\n", ticks, rate, us / ticks);
    return 0;
}
