/* stdin to EOF, echoed upper-cased on stdout with a byte count; a line on stderr. */
#include <ctype.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char buf[4096];
    long total = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) buf[i] = toupper((unsigned char)buf[i]);
        write(1, buf, n);
        total += n;
    }
    printf("\nread %ld bytes, last read %zd\n", total, n);
    fprintf(stderr, "this goes to stderr\n");
    printf("isatty(0)=%d\n", isatty(0));
    return 0;
}
