/* Shared by the conformance programs: print a call's result and, when it failed, errno's text. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CHECK(label, expr)                                                        \
    do {                                                                          \
        errno = 0;                                                                \
        long _r = (long)(expr);                                                   \
        if (_r < 0) printf("%s: -1 (%s)\n", label, strerror(errno));              \
        else printf("%s: %ld\n", label, _r);                                      \
    } while (0)

/* A property that must hold in every runtime (values such as times and random bytes vary). */
#define PROP(label, cond) printf("%s: %s\n", label, (cond) ? "yes" : "NO")
