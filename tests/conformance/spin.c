/* Never ends by itself (for the cancellation tests of runtime.commands; not compared, since
   wasmtime would run it forever too): argv[1] "cpu" computes, "stdin" waits in read(0),
   "sleep" waits in nanosleep. Prints "started" first. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "cpu";
    printf("started\n");
    fflush(stdout);
    volatile unsigned long n = 0;
    char buf[16];
    struct timespec nap = {1, 0};
    for (;;) {
        if (strcmp(how, "stdin") == 0) {
            if (read(0, buf, sizeof buf) == 0) return 0;
        } else if (strcmp(how, "sleep") == 0) {
            nanosleep(&nap, NULL);
        } else {
            n++;
        }
    }
}
