/* A long-running command (wasi:cli/run) for the service tests. A service gets no arguments, so
   what it does comes from its environment (localResources.environment):

   SERVICE_MODE  "serve" (default): prints "service up" on stdout and "service warming up" on
                 stderr, then sleeps in 50 ms naps forever (a host call: cancellation reaches it there);
                 "exit": prints "service exiting with <code>" and exits with SERVICE_EXIT (default 1);
                 "trap": prints "service about to trap", then traps (unreachable);
                 "spin": prints "service spinning", then computes forever (no host call: only the
                 engine's epoch interruption can stop it).
   SERVICE_MARK  a directory (a volume mount): each run appends "run" to SERVICE_MARK/runs first, so
                 a test counts runs and sees that volumeMounts reach the service as preopens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void mark_run(void) {
    const char *dir = getenv("SERVICE_MARK");
    if (dir == NULL || *dir == '\0') return;
    char path[512];
    snprintf(path, sizeof path, "%s/runs", dir);
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return;
    }
    fputs("run\n", f);
    fclose(f);
}

int main(void) {
    const char *mode = getenv("SERVICE_MODE");
    if (mode == NULL) mode = "serve";
    mark_run();
    if (strcmp(mode, "exit") == 0) {
        const char *code = getenv("SERVICE_EXIT");
        int status = code != NULL ? atoi(code) : 1;
        printf("service exiting with %d\n", status);
        fflush(stdout);
        return status;
    }
    if (strcmp(mode, "trap") == 0) {
        printf("service about to trap\n");
        fflush(stdout);
        __builtin_trap();
    }
    if (strcmp(mode, "spin") == 0) {
        printf("service spinning\n");
        fflush(stdout);
        volatile unsigned long n = 0;
        for (;;) n++;
    }
    printf("service up\n");
    fflush(stdout);
    fprintf(stderr, "service warming up\n");
    struct timespec nap = {0, 50 * 1000 * 1000};
    for (;;) nanosleep(&nap, NULL);
}
