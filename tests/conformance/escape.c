/* Escapes: `..`, absolute paths and symlinks (made by the host or by this guest) must not reach
   outside the preopen /sandbox. The host puts outside.txt next to the sandbox and a symlink
   /sandbox/hostlink -> ../outside.txt; nothing here may read "SECRET". */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"

static void attempt(const char *path) {
    char buf[64] = {0};
    errno = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("open %s: %s\n", path, strerror(errno)); return; }
    read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("open %s: READ [%s]\n", path, buf);
}

int main(void) {
    attempt("/sandbox/../outside.txt");
    attempt("/sandbox/sub/../../outside.txt");
    attempt("/outside.txt");
    attempt("/etc/passwd");
    attempt("/sandbox/hostlink");
    attempt("/sandbox/abslink");
    CHECK("symlink out", symlink("../outside.txt", "/sandbox/guestlink"));
    attempt("/sandbox/guestlink");
    CHECK("symlink deep out", symlink("sub/../../outside.txt", "/sandbox/guestlink2"));
    attempt("/sandbox/guestlink2");
    CHECK("symlink absolute", symlink("/etc/passwd", "/sandbox/guestabs"));
    attempt("/sandbox/guestabs");
    char buf[128] = {0};
    ssize_t n = readlink("/sandbox/guestlink", buf, sizeof buf - 1);
    printf("readlink guestlink: %zd [%s]\n", n, n > 0 ? buf : "");
    struct stat st;
    CHECK("stat through link out", stat("/sandbox/guestlink", &st));
    CHECK("lstat link out", lstat("/sandbox/guestlink", &st));
    CHECK("mkdir outside", mkdir("/sandbox/../made-outside", 0755));
    CHECK("create via link out", open("/sandbox/guestlink", O_CREAT | O_WRONLY, 0644));
    CHECK("rename out", rename("/sandbox/sub/in.txt", "/sandbox/../moved.txt"));
    CHECK("hard link out", link("/sandbox/hostlink", "/sandbox/hardout"));
    CHECK("chdir sub", chdir("/sandbox/sub"));
    attempt("../../outside.txt");
    attempt("../sub/in.txt");
    return 0;
}
