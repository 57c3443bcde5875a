/* Clocks: properties only (values differ between runs). */
#include "check.h"
#include <time.h>
#include <sys/time.h>

static long long ns(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    struct timespec r, m1, m2, res;
    PROP("clock_gettime realtime succeeds", clock_gettime(CLOCK_REALTIME, &r) == 0);
    PROP("realtime after 2023", r.tv_sec > 1672531200);
    PROP("realtime nanos in range", r.tv_nsec >= 0 && r.tv_nsec < 1000000000);
    time_t t = time(NULL);
    PROP("time() within 5s of realtime", t - r.tv_sec <= 5 && r.tv_sec - t <= 5);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    PROP("gettimeofday within 5s", tv.tv_sec - r.tv_sec <= 5);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    int monotonic_ok = 1;
    for (int i = 0; i < 1000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &m2);
        if (ns(m2) < ns(m1)) monotonic_ok = 0;
        m1 = m2;
    }
    PROP("monotonic never goes back", monotonic_ok);
    struct timespec before, after, nap = {0, 20000000};
    clock_gettime(CLOCK_MONOTONIC, &before);
    PROP("nanosleep succeeds", nanosleep(&nap, NULL) == 0);
    clock_gettime(CLOCK_MONOTONIC, &after);
    long long slept = ns(after) - ns(before);
    PROP("slept at least 20ms", slept >= 20000000LL);
    PROP("slept less than 5s", slept < 5000000000LL);
    PROP("clock_getres monotonic succeeds", clock_getres(CLOCK_MONOTONIC, &res) == 0);
    PROP("res positive and <= 1ms", ns(res) > 0 && ns(res) <= 1000000);
    PROP("clock_getres realtime succeeds", clock_getres(CLOCK_REALTIME, &res) == 0);
    PROP("res realtime positive", ns(res) > 0);
    CHECK("clock_gettime process cputime (the adapter has none)", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &r));
    return 0;
}
