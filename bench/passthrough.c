/* passthrough: the one-backend-connection-per-client layout with no work at all, in C.
 *
 * The C twin of bench/passthrough.py: every accepted client gets its own connection to
 * the memcached on a unix socket, and bytes are copied both ways unread, one read() and
 * one write() per readable event (level-triggered epoll, one thread, as libuv does). It
 * shows what the layout costs without Python and without uvloop: the system calls, the
 * kernel's socket work, and memcached serving one connection per client.
 * Not a product: no timeouts, no limits beyond the fd limit; SIGTERM/SIGINT stop it.
 *
 * build: gcc -O2 -Wall -o passthrough passthrough.c   (bench/build.sh passthrough)
 * usage: passthrough -H 127.0.0.1 -p PORT -u /path/to/memcached.sock
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* One direction of a pair: what is read from fd is written to peer->fd. Bytes the peer's
 * socket could not take wait in `held` (never expected with one request in flight per
 * client, handled anyway) and reading from fd pauses until they are written. */
struct side {
    int fd;
    struct side *peer;
    char *held;
    size_t held_len;
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static int ep;
static char buf[65536];

static void watch(struct side *s, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(ep, op, s->fd, &ev) < 0 && op != EPOLL_CTL_DEL) perror("epoll_ctl");
}

static void close_pair(struct side *s) {
    struct side *p = s->peer;
    close(s->fd);  /* closing removes the fd from the epoll set */
    close(p->fd);
    free(s->held);
    free(p->held);
    s->fd = p->fd = -1;
    /* Both sides are freed at once: events for the other side may still be in this batch,
     * so freeing is deferred to the end of the batch (see main). */
}

/* Write to PEER what could not be written before; true when nothing is held any more. */
static int flush_held(struct side *from) {
    struct side *to = from->peer;
    while (from->held_len) {
        ssize_t n = write(to->fd, from->held, from->held_len);
        if (n < 0) return errno == EAGAIN ? 0 : -1;
        memmove(from->held, from->held + n, from->held_len - (size_t)n);
        from->held_len -= (size_t)n;
    }
    return 1;
}

static int forward(struct side *from) {
    ssize_t n = read(from->fd, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return -1;
    if (n < 0) return 0;
    ssize_t w = write(from->peer->fd, buf, (size_t)n);
    if (w < 0 && errno != EAGAIN) return -1;
    if (w < 0) w = 0;
    if (w < n) {  /* the peer is full: hold the rest, stop reading until it drains */
        from->held = malloc((size_t)(n - w));
        if (!from->held) return -1;
        memcpy(from->held, buf + w, (size_t)(n - w));
        from->held_len = (size_t)(n - w);
        watch(from, 0, EPOLL_CTL_MOD);
        watch(from->peer, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
    }
    return 0;
}

static int backend_connect(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    /* Blocking: a unix-socket connect completes as soon as memcached's backlog has room. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = NULL;
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "H:p:u:")) != -1) {
        if (opt == 'H') host = optarg;
        else if (opt == 'p') port = atoi(optarg);
        else if (opt == 'u') path = optarg;
        else return 2;
    }
    if (!port || !path) {
        fprintf(stderr, "usage: passthrough -H HOST -p PORT -u MEMCACHED_SOCKET\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(lfd, 4096) < 0) {
        perror("listen");
        return 2;
    }
    ep = epoll_create1(0);
    struct side listener = {.fd = lfd};
    watch(&listener, EPOLLIN, EPOLL_CTL_ADD);

    struct epoll_event events[1024];
    struct side *dead[1024];  /* at most one pair closed per event */
    while (!stopping) {
        int n = epoll_wait(ep, events, 1024, 1000);
        int ndead = 0;
        for (int i = 0; i < n; i++) {
            struct side *s = events[i].data.ptr;
            if (s == &listener) {
                int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                if (cfd < 0) continue;
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                int bfd = backend_connect(path);
                if (bfd < 0) {
                    close(cfd);
                    continue;
                }
                struct side *c = calloc(2, sizeof *c);
                if (!c) {
                    close(cfd);
                    close(bfd);
                    continue;
                }
                c[0] = (struct side){.fd = cfd, .peer = &c[1]};
                c[1] = (struct side){.fd = bfd, .peer = &c[0]};
                watch(&c[0], EPOLLIN, EPOLL_CTL_ADD);
                watch(&c[1], EPOLLIN, EPOLL_CTL_ADD);
                continue;
            }
            if (s->fd < 0) continue;  /* its pair was closed earlier in this batch */
            int bad = 0;
            if (events[i].events & EPOLLOUT) {  /* the peer's held bytes can go now */
                int done = flush_held(s->peer);
                if (done < 0) bad = 1;
                else if (done) {
                    watch(s, EPOLLIN, EPOLL_CTL_MOD);
                    watch(s->peer, EPOLLIN, EPOLL_CTL_MOD);
                }
            }
            if (!bad && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !s->held_len) bad = forward(s) < 0;
            if (bad) {
                close_pair(s);
                dead[ndead++] = s < s->peer ? s : s->peer;  /* the calloc'd pair starts at the lower side */
            }
        }
        for (int i = 0; i < ndead; i++) free(dead[i]);
    }
    return 0;
}
