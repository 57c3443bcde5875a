/* Sockets: wasi-libc for preview1 has no socket(), bind, connect or listen (WASI 0.1 only
   passes in pre-opened sockets, and the preview1 adapter has none to give a 0.2 command). What
   it declares (accept, send, recv, shutdown) reaches the adapter's sock_* functions, which trap
   (`unreachable`) in every runtime: argv[1] names the one to call. getsockopt is answered by
   the libc itself. */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check.h"

int main(int argc, char **argv) {
    char buf[4];
    const char *call = argc > 1 ? argv[1] : "";
    int v;
    socklen_t len = sizeof v;
    CHECK("getsockopt stdout", getsockopt(1, SOL_SOCKET, SO_TYPE, &v, &len));
    fflush(stdout);
    if (strcmp(call, "accept") == 0) CHECK("accept stdin", accept(0, NULL, NULL));
    if (strcmp(call, "send") == 0) CHECK("send stdout", send(1, "x", 1, 0));
    if (strcmp(call, "recv") == 0) CHECK("recv stdin", recv(0, buf, sizeof buf, 0));
    if (strcmp(call, "shutdown") == 0) CHECK("shutdown stdout", shutdown(1, SHUT_RDWR));
    return 0;
}
