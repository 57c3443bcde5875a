/* Hello world: the startup benchmark's guest (bench/run_bench.py), compared like the others. */
#include <stdio.h>

int main(void) {
    printf("Hello, world!\n");
    return 0;
}
