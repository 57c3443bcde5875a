/* Files under the preopen /sandbox: create, write, read, seek, pread/pwrite, append, stat,
   truncate (set-size), utimes (set-times, set-times-at), sync, advise, errors. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include "check.h"

static void show(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { printf("stat %s: %s\n", path, strerror(errno)); return; }
    printf("stat %s: size=%lld reg=%d dir=%d nlink=%llu\n", path, (long long)st.st_size,
           S_ISREG(st.st_mode), S_ISDIR(st.st_mode), (unsigned long long)st.st_nlink);
}

int main(void) {
    char buf[64] = {0};
    int fd = open("/sandbox/new.txt", O_CREAT | O_RDWR | O_TRUNC, 0644);
    printf("open create: %d\n", fd >= 0);
    CHECK("write", write(fd, "hello, world\n", 13));
    CHECK("lseek end", lseek(fd, 0, SEEK_END));
    CHECK("lseek set 7", lseek(fd, 7, SEEK_SET));
    CHECK("read", read(fd, buf, 5));
    printf("read back: [%s]\n", buf);
    CHECK("lseek cur -3", lseek(fd, -3, SEEK_CUR));
    CHECK("lseek negative", lseek(fd, -100, SEEK_SET));
    CHECK("pwrite", pwrite(fd, "HELLO", 5, 0));
    memset(buf, 0, sizeof buf);
    CHECK("pread", pread(fd, buf, sizeof buf - 1, 0));
    printf("content: [%s]\n", buf);
    CHECK("fsync", fsync(fd));
    CHECK("fdatasync", fdatasync(fd));
    CHECK("posix_fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    CHECK("ftruncate 5", ftruncate(fd, 5));
    show("/sandbox/new.txt");
    CHECK("ftruncate 100", ftruncate(fd, 100));
    show("/sandbox/new.txt");
    memset(buf, 1, sizeof buf);
    CHECK("pread past old end", pread(fd, buf, 4, 50));
    printf("zero filled: %d\n", buf[0] == 0 && buf[3] == 0);
    CHECK("truncate path 3", truncate("/sandbox/new.txt", 3));
    show("/sandbox/new.txt");

    struct timespec times[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
    CHECK("futimens", futimens(fd, times));
    struct stat st;
    fstat(fd, &st);
    printf("atime=%lld.%09ld mtime=%lld.%09ld\n", (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    struct timespec omit[2] = {{0, UTIME_OMIT}, {1300000000, 5}};
    CHECK("futimens omit atime", futimens(fd, omit));
    fstat(fd, &st);
    printf("atime=%lld mtime=%lld.%09ld\n", (long long)st.st_atim.tv_sec, (long long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec);
    struct timespec now[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    CHECK("futimens now", futimens(fd, now));
    fstat(fd, &st);
    printf("now is after 2023: %d\n", st.st_mtim.tv_sec > 1672531200);
    close(fd);
    struct timespec at[2] = {{1400000000, 0}, {1500000000, 0}};
    CHECK("utimensat", utimensat(AT_FDCWD, "/sandbox/new.txt", at, 0));
    stat("/sandbox/new.txt", &st);
    printf("mtime=%lld atime=%lld\n", (long long)st.st_mtim.tv_sec, (long long)st.st_atim.tv_sec);
    struct timeval tv[2] = {{1600000000, 0}, {1700000000, 0}};
    CHECK("utimes", utimes("/sandbox/new.txt", tv));
    stat("/sandbox/new.txt", &st);
    printf("mtime=%lld\n", (long long)st.st_mtim.tv_sec);

    fd = open("/sandbox/new.txt", O_WRONLY | O_APPEND);
    CHECK("append write", write(fd, "++", 2));
    close(fd);
    show("/sandbox/new.txt");

    CHECK("open missing", open("/sandbox/missing.txt", O_RDONLY));
    CHECK("open exclusive existing", open("/sandbox/new.txt", O_CREAT | O_EXCL | O_WRONLY, 0644));
    CHECK("open dir for write", open("/sandbox", O_WRONLY));
    CHECK("open file as dir", open("/sandbox/new.txt", O_RDONLY | O_DIRECTORY));
    fd = open("/sandbox/existing.txt", O_RDONLY);
    memset(buf, 0, sizeof buf);
    CHECK("read existing", read(fd, buf, sizeof buf - 1));
    printf("existing: [%s]\n", buf);
    CHECK("read at eof", read(fd, buf, sizeof buf - 1));
    CHECK("write to read-only fd", write(fd, "x", 1));
    close(fd);
    CHECK("read closed fd", read(fd, buf, 1));
    CHECK("unlink", unlink("/sandbox/new.txt"));
    CHECK("unlink again", unlink("/sandbox/new.txt"));
    show("/sandbox/new.txt");
    FILE *f = fopen("/sandbox/stdio.txt", "w+");
    fprintf(f, "line %d\n", 1);
    fprintf(f, "line %d\n", 2);
    rewind(f);
    char line[32];
    while (fgets(line, sizeof line, f)) printf("fgets: %s", line);
    printf("ftell: %ld\n", ftell(f));
    fclose(f);
    return 0;
}
