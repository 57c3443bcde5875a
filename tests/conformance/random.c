/* Random: properties only (two draws differ, bytes look random), never fixed values. */
#include "check.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    unsigned char a[256], b[256];
    PROP("getentropy a succeeds", getentropy(a, sizeof a) == 0);
    PROP("getentropy b succeeds", getentropy(b, sizeof b) == 0);
    PROP("draws differ", memcmp(a, b, sizeof a) != 0);
    int seen[256] = {0}, distinct = 0, ones = 0;
    for (size_t i = 0; i < sizeof a; i++) {
        if (!seen[a[i]]++) distinct++;
        for (int bit = 0; bit < 8; bit++) ones += (a[i] >> bit) & 1;
    }
    /* 256 random bytes: about 162 distinct values and 1024 one-bits; bounds are far tails. */
    PROP("many distinct bytes", distinct > 100);
    PROP("balanced bits", ones > 824 && ones < 1224);
    PROP("too long refused", getentropy(a, 257) == -1);
    unsigned r1 = arc4random(), r2 = arc4random(), r3 = arc4random();
    PROP("arc4random varies", !(r1 == r2 && r2 == r3));
    unsigned u = arc4random_uniform(10);
    PROP("arc4random_uniform in range", u < 10);
    return 0;
}
