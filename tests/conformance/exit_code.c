/* Exit codes: exits with argv[1] (via return, or exit() with "exit" as argv[2]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with %d\n", code);
    fflush(stdout);
    if (argc > 2 && strcmp(argv[2], "exit") == 0) exit(code);
    if (argc > 2 && strcmp(argv[2], "trap") == 0) __builtin_trap();
    return code;
}
