/* Directories: mkdir, readdir (sorted: order is the OS's), rename (files and directories),
   rmdir, stat, errors. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *path) {
    DIR *d = opendir(path);
    if (!d) { printf("opendir %s: %s\n", path, strerror(errno)); return; }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        char *s = malloc(300);
        const char *t = e->d_type == DT_DIR ? "dir" : e->d_type == DT_REG ? "file"
                      : e->d_type == DT_LNK ? "link" : "other";
        snprintf(s, 300, "%s (%s)", e->d_name, t);
        names[n++] = s;
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp);
    printf("%s:", path);
    for (int i = 0; i < n; i++) { printf(" %s;", names[i]); free(names[i]); }
    printf("\n");
}

static void touch(const char *path, const char *text) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, text, strlen(text));
    close(fd);
}

int main(void) {
    list("/sandbox");
    CHECK("mkdir a", mkdir("/sandbox/a", 0755));
    CHECK("mkdir a again", mkdir("/sandbox/a", 0755));
    CHECK("mkdir a/b", mkdir("/sandbox/a/b", 0755));
    CHECK("mkdir missing parent", mkdir("/sandbox/x/y", 0755));
    touch("/sandbox/a/one.txt", "1");
    touch("/sandbox/a/b/two.txt", "22");
    list("/sandbox/a");
    list("/sandbox/a/b");
    struct stat st;
    CHECK("stat dir", stat("/sandbox/a", &st));
    printf("is dir: %d\n", S_ISDIR(st.st_mode));
    CHECK("rename file", rename("/sandbox/a/one.txt", "/sandbox/a/b/one.txt"));
    CHECK("rename missing", rename("/sandbox/a/nope", "/sandbox/a/nope2"));
    touch("/sandbox/a/three.txt", "333");
    CHECK("rename over file", rename("/sandbox/a/three.txt", "/sandbox/a/b/two.txt"));
    CHECK("rename dir", rename("/sandbox/a/b", "/sandbox/c"));
    CHECK("rename dir into itself", rename("/sandbox/c", "/sandbox/c/inner"));
    list("/sandbox");
    list("/sandbox/c");
    CHECK("rmdir non-empty", rmdir("/sandbox/c"));
    CHECK("rmdir file", rmdir("/sandbox/c/one.txt"));
    CHECK("unlink dir", unlink("/sandbox/a"));
    CHECK("unlink one", unlink("/sandbox/c/one.txt"));
    CHECK("unlink two", unlink("/sandbox/c/two.txt"));
    CHECK("rmdir c", rmdir("/sandbox/c"));
    CHECK("rmdir a", rmdir("/sandbox/a"));
    CHECK("rmdir missing", rmdir("/sandbox/a"));
    CHECK("opendir missing", opendir("/sandbox/none") ? 0 : -1);
    CHECK("chdir", chdir("/sandbox/sub"));
    char cwd[256];
    printf("cwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : strerror(errno));
    touch("relative.txt", "rel");
    list(".");
    CHECK("stat relative", stat("relative.txt", &st));
    printf("size: %lld\n", (long long)st.st_size);
    list("/sandbox");
    return 0;
}
