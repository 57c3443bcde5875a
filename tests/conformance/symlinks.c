/* Symbolic and hard links: symlink (symlink-at), readlink (readlink-at, returns what was
   written), lstat vs stat, following links inside the preopen, link (link-at), dangling links. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"

static void readback(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("open %s: %s\n", path, strerror(errno)); return; }
    read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("content of %s: [%s]\n", path, buf);
}

static void readl(const char *path) {
    char buf[256] = {0};
    errno = 0;
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) printf("readlink %s: %s\n", path, strerror(errno));
    else printf("readlink %s: [%s] (%zd)\n", path, buf, n);
}

int main(void) {
    CHECK("mkdir d", mkdir("/sandbox/d", 0755));
    int fd = open("/sandbox/d/target.txt", O_CREAT | O_WRONLY, 0644);
    write(fd, "target", 6);
    close(fd);
    CHECK("symlink relative", symlink("d/target.txt", "/sandbox/ln"));
    CHECK("symlink dotdot inside", symlink("../d/target.txt", "/sandbox/d/up"));
    CHECK("symlink to dir", symlink("d", "/sandbox/dirlink"));
    CHECK("symlink dangling", symlink("nowhere", "/sandbox/dangling"));
    CHECK("symlink exists", symlink("d", "/sandbox/ln"));
    readl("/sandbox/ln");
    readl("/sandbox/d/up");
    readl("/sandbox/dangling");
    readl("/sandbox/d/target.txt");
    readl("/sandbox/missing");
    char small[4] = {0};
    CHECK("readlink truncated", readlink("/sandbox/ln", small, 3));
    printf("truncated: [%.3s]\n", small);
    readback("/sandbox/ln");
    readback("/sandbox/d/up");
    readback("/sandbox/dirlink/target.txt");
    readback("/sandbox/dangling");
    struct stat st;
    CHECK("lstat ln", lstat("/sandbox/ln", &st));
    printf("lstat is link: %d size=%lld\n", S_ISLNK(st.st_mode), (long long)st.st_size);
    CHECK("stat ln", stat("/sandbox/ln", &st));
    printf("stat is reg: %d size=%lld\n", S_ISREG(st.st_mode), (long long)st.st_size);
    CHECK("stat dangling", stat("/sandbox/dangling", &st));
    CHECK("open nofollow", open("/sandbox/ln", O_RDONLY | O_NOFOLLOW));
    fd = open("/sandbox/dangling", O_CREAT | O_WRONLY, 0644);
    printf("create through dangling link: %d\n", fd >= 0);
    if (fd >= 0) close(fd);
    CHECK("hard link", link("/sandbox/d/target.txt", "/sandbox/hard.txt"));
    CHECK("stat hard", stat("/sandbox/hard.txt", &st));
    printf("nlink=%llu\n", (unsigned long long)st.st_nlink);
    CHECK("hard link exists", link("/sandbox/d/target.txt", "/sandbox/hard.txt"));
    CHECK("hard link missing", link("/sandbox/none", "/sandbox/hard2.txt"));
    CHECK("rename link", rename("/sandbox/ln", "/sandbox/ln2"));
    readl("/sandbox/ln2");
    CHECK("unlink link", unlink("/sandbox/ln2"));
    readback("/sandbox/d/target.txt");
    CHECK("symlink loop a", symlink("loopb", "/sandbox/loopa"));
    CHECK("symlink loop b", symlink("loopa", "/sandbox/loopb"));
    CHECK("open loop", open("/sandbox/loopa", O_RDONLY));
    return 0;
}
