/* mcload: small memcached text-protocol load generator for many connections.
 *
 * Each connection has at most one request in flight (closed loop), or, with
 * -R, sends one request every 1/R s (never more than one in flight).
 * Requests: "get key:N" or "set key:N 0 0 SIZE" (fraction -r), N uniform in
 * [1, KEYS]. Responses are parsed and checked (STORED; a hit's length, its
 * bytes and the closing END), the first few bad answers are shown on stderr.
 * All connections are opened and have answered one get (a miss) before the
 * clock starts (connect_s); at most -C connections per thread are connecting
 * or awaiting that first answer at once (a ramp, so listen backlogs of a few
 * hundred do not drop SYNs at 10k connections). -w seconds of warmup are not
 * counted. Latency is measured from the moment a request is written.
 * Prints one JSON line. Per-connection state is ~0.5 KiB.
 *
 * build: gcc -O2 -pthread -o mcload mcload.c -lm
 * usage: mcload [-H 127.0.0.1] [-p 11211] [-c conns] [-t threads] [-d secs]
 *               [-w warmup] [-k keys] [-s size] [-r set_ratio] [-R per_conn_rate]
 *               [-C max_pending_connects_per_thread] [-P] [-I]
 *        -P: prefill keys 1..KEYS over one connection, then exit.
 *        -I: idle: open and ping every connection, print {"idle_ready": N, ...}, then hold
 *            the connections open until stdin reaches EOF (for measuring memory per idle conn).
 * exit status: 0 when every answer was right, 1 on wrong answers or disconnects, 2 on setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NBUCKETS 2400 /* log buckets of 1% width, 1 us .. ~6e10 us */

static const char *host = "127.0.0.1";
static int port = 11211, nconns = 50, nthreads = 2, secs = 10, warm = 1, keys = 10000, size = 100;
static int max_pending = 256, idle_mode = 0, error_reports = 0;
static double set_ratio = 0.1, rate = 0;
static char *value;
static uint64_t t_start, t_end; /* measurement window, CLOCK_MONOTONIC ns */
static pthread_barrier_t barrier;

struct conn {
    int fd, is_set, key, dead, phase; /* phase: 0 connecting, 1 first get sent, 2 up */
    uint32_t req_len, sent, rlen;
    uint64_t t_send, next_at;
    char *req, *rbuf;
};

struct thr {
    pthread_t tid;
    int first, n, ep;
    struct conn *c;
    uint64_t rng, ops, gets, sets, hits, misses, errors, disconnects;
    uint64_t hist[NBUCKETS];
    int *heap, heap_n; /* rate mode: min-heap of conn indexes by next_at */
    int up;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t rnd(struct thr *t) { /* xorshift64 */
    t->rng ^= t->rng << 13; t->rng ^= t->rng >> 7; t->rng ^= t->rng << 17;
    return t->rng;
}

static int bucket(double us) { int b = us < 1 ? 0 : (int)(log(us) / log(1.01)) + 1; return b < NBUCKETS ? b : NBUCKETS - 1; }
static double bucket_us(int b) { return b == 0 ? 1 : pow(1.01, b); } /* upper edge */

static void die(const char *m) { perror(m); exit(2); }

static int connect_nb(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0) die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) die("connect");
    return fd;
}

/* ---- rate-mode heap ---- */
static void heap_push(struct thr *t, int i) {
    int k = t->heap_n++;
    while (k > 0 && t->c[t->heap[(k - 1) / 2]].next_at > t->c[i].next_at) { t->heap[k] = t->heap[(k - 1) / 2]; k = (k - 1) / 2; }
    t->heap[k] = i;
}
static int heap_pop(struct thr *t) {
    int top = t->heap[0], last = t->heap[--t->heap_n], k = 0;
    for (;;) {
        int ch = 2 * k + 1;
        if (ch >= t->heap_n) break;
        if (ch + 1 < t->heap_n && t->c[t->heap[ch + 1]].next_at < t->c[t->heap[ch]].next_at) ch++;
        if (t->c[t->heap[ch]].next_at >= t->c[last].next_at) break;
        t->heap[k] = t->heap[ch]; k = ch;
    }
    t->heap[k] = last;
    return top;
}

static void flush(struct thr *t, struct conn *c) {
    while (c->sent < c->req_len) {
        ssize_t w = write(c->fd, c->req + c->sent, c->req_len - c->sent);
        if (w > 0) { c->sent += w; continue; }
        if (w < 0 && errno == EAGAIN) { /* wait for EPOLLOUT */
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        c->dead = 1; t->disconnects++; close(c->fd); return;
    }
}

static void send_req(struct thr *t, struct conn *c) {
    c->key = 1 + rnd(t) % keys;
    c->is_set = (rnd(t) % 1000000) < set_ratio * 1000000;
    if (c->is_set)
        c->req_len = sprintf(c->req, "set key:%d 0 0 %d\r\n%s\r\n", c->key, size, value);
    else
        c->req_len = sprintf(c->req, "get key:%d\r\n", c->key);
    c->sent = c->rlen = 0;
    c->t_send = now_ns();
    flush(t, c);
}

/* returns 1 when a full response is in rbuf, 0 if more bytes are needed */
static int parse(struct thr *t, struct conn *c, int counted) {
    char *b = c->rbuf, *eol = memmem(b, c->rlen, "\r\n", 2);
    if (!eol) return 0;
    int ok = 1, hit = 0;
    if (c->is_set) {
        ok = eol - b == 6 && !memcmp(b, "STORED", 6);
    } else if (!memcmp(b, "END\r\n", 5)) {
        hit = 0;
    } else if (!memcmp(b, "VALUE ", 6)) {
        char *sp = memrchr(b, ' ', eol - b);
        int bytes = atoi(sp + 1), need = (eol - b) + 2 + bytes + 2 + 5;
        if (need > size + 255) { ok = 0; goto done; } /* cannot fit the buffer */
        if ((int)c->rlen < need) return 0;
        ok = bytes == size && !memcmp(b + (eol - b) + 2, value, size) && !memcmp(b + need - 5, "END\r\n", 5);
        hit = 1;
    } else ok = 0;
done:
    if (!ok && __atomic_fetch_add(&error_reports, 1, __ATOMIC_RELAXED) < 5) {
        int n = c->rlen < 120 ? (int)c->rlen : 120;
        fprintf(stderr, "bad answer to %s key:%d: %.*s\n", c->is_set ? "set" : "get", c->key, n, b);
    }
    if (counted) {
        if (!ok) t->errors++;
        if (c->is_set) t->sets++; else { t->gets++; if (hit) t->hits++; else if (ok) t->misses++; }
    }
    return 1;
}

static void on_readable(struct thr *t, struct conn *c, uint64_t interval, int ping) {
    ssize_t r = read(c->fd, c->rbuf + c->rlen, size + 255 - c->rlen);
    if (r <= 0) {
        if (r < 0 && errno == EAGAIN) return;
        c->dead = 1; t->disconnects++; close(c->fd); return;
    }
    c->rlen += r;
    uint64_t now = now_ns();
    int counted = now >= t_start && now < t_end;
    if (!parse(t, c, counted)) return;
    if (ping) { t->up++; c->phase = 2; c->rlen = 0; return; }
    if (counted) { t->ops++; t->hist[bucket((now - c->t_send) / 1000.0)]++; }
    if (interval) { /* rate mode: next send at the next slot, never in the past */
        c->next_at += interval;
        if (c->next_at < now) c->next_at = now;
        heap_push(t, c - t->c);
    } else send_req(t, c);
}

static void handle(struct thr *t, struct epoll_event *e, uint64_t interval, int ping) {
    struct conn *c = e->data.ptr;
    if (c->dead) return;
    if (e->events & EPOLLOUT) {
        flush(t, c);
        if (!c->dead && c->sent == c->req_len) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
    }
    if (!c->dead && e->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(t, c, interval, ping);
}

static void *run(void *arg) {
    struct thr *t = arg;
    struct epoll_event evs[512];
    t->ep = epoll_create1(0);
    /* open every connection and send each one "get key:0" (a miss); wait for every answer: a
       proxy has then accepted each client and opened its backend side before the clock starts.
       At most max_pending connections are connecting or awaiting that answer at once. */
    for (int next = 0; t->up < t->n;) {
        while (next < t->n && (max_pending <= 0 || next - t->up < max_pending)) {
            struct conn *c = &t->c[next++];
            c->fd = connect_nb();
            c->req = malloc(size + 64); c->rbuf = malloc(size + 256);
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev);
        }
        int n = epoll_wait(t->ep, evs, 512, 60000);
        if (n <= 0) { fprintf(stderr, "connect timeout: %d of %d up\n", t->up, t->n); exit(2); }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->phase == 0) {
                int err = 0; socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { errno = err; die("connect"); }
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->phase = 1; c->is_set = 0; c->key = 0;
                c->req_len = sprintf(c->req, "get key:0\r\n"); c->sent = c->rlen = 0;
                flush(t, c);
            } else handle(t, &evs[i], 0, 1);
            if (c->dead) { fprintf(stderr, "connection closed during connect\n"); exit(2); }
        }
    }
    pthread_barrier_wait(&barrier); /* main thread sets t_start/t_end */
    pthread_barrier_wait(&barrier);
    uint64_t interval = rate > 0 ? (uint64_t)(1e9 / rate) : 0, now = now_ns();
    for (int i = 0; i < t->n; i++) {
        if (interval) { t->c[i].next_at = now + rnd(t) % interval; heap_push(t, i); }
        else send_req(t, &t->c[i]);
    }
    while ((now = now_ns()) < t_end) {
        int timeout = 100;
        if (interval && t->heap_n) {
            uint64_t due = t->c[t->heap[0]].next_at;
            timeout = due <= now ? 0 : (int)((due - now) / 1000000) + 1;
            if (timeout > 100) timeout = 100;
        }
        int n = epoll_wait(t->ep, evs, 512, timeout);
        for (int i = 0; i < n; i++) handle(t, &evs[i], interval, 0);
        if (interval)
            for (now = now_ns(); t->heap_n && t->c[t->heap[0]].next_at <= now;) {
                struct conn *c = &t->c[heap_pop(t)];
                if (!c->dead) send_req(t, c);
            }
    }
    return NULL;
}

static int prefill(void) {
    int fd = connect_nb(), fl = fcntl(fd, F_GETFL), stored = 0;
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* blocking write waits for the connect */
    char *req = malloc(100 * (size + 64)), resp[4096];
    for (int k = 1; k <= keys; k += 100) {
        int len = 0, n = 0;
        for (int j = k; j < k + 100 && j <= keys; j++, n++)
            len += sprintf(req + len, "set key:%d 0 0 %d\r\n%s\r\n", j, size, value);
        if (write(fd, req, len) != len) die("write");
        for (int got = 0, off = 0; got < n;) { /* count "STORED\r\n" lines */
            ssize_t r = read(fd, resp + off, sizeof resp - off - 1);
            if (r <= 0) die("read");
            off += r; resp[off] = 0;
            char *p = resp, *e;
            while ((e = strstr(p, "\r\n"))) { got++; stored += !strncmp(p, "STORED", 6); p = e + 2; }
            off = resp + off - p; memmove(resp, p, off);
        }
    }
    printf("{\"prefilled\": %d, \"stored\": %d}\n", keys, stored);
    return stored == keys ? 0 : 1;
}

int main(int argc, char **argv) {
    int opt, do_prefill = 0;
    while ((opt = getopt(argc, argv, "H:p:c:t:d:w:k:s:r:R:C:PI")) != -1) switch (opt) {
        case 'H': host = optarg; break;           case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;   case 't': nthreads = atoi(optarg); break;
        case 'd': secs = atoi(optarg); break;     case 'w': warm = atoi(optarg); break;
        case 'k': keys = atoi(optarg); break;     case 's': size = atoi(optarg); break;
        case 'r': set_ratio = atof(optarg); break; case 'R': rate = atof(optarg); break;
        case 'C': max_pending = atoi(optarg); break; case 'I': idle_mode = 1; break;
        case 'P': do_prefill = 1; break;
        default: fprintf(stderr, "see the comment at the top of mcload.c\n"); return 2;
    }
    value = malloc(size + 1); memset(value, 'x', size); value[size] = 0;
    if (do_prefill) return prefill();
    if (nthreads > nconns) nthreads = nconns;
    struct thr *th = calloc(nthreads, sizeof *th);
    struct conn *all = calloc(nconns, sizeof *all);
    pthread_barrier_init(&barrier, NULL, nthreads + 1);
    uint64_t t_connect = now_ns();
    for (int i = 0, first = 0; i < nthreads; i++) {
        th[i].n = nconns / nthreads + (i < nconns % nthreads);
        th[i].c = all + first; first += th[i].n;
        th[i].rng = 0x9E3779B97F4A7C15ull * (i + 1);
        th[i].heap = malloc(th[i].n * sizeof(int));
        pthread_create(&th[i].tid, NULL, run, &th[i]);
    }
    pthread_barrier_wait(&barrier);
    double connect_s = (now_ns() - t_connect) / 1e9;
    if (idle_mode) { /* hold every connection open until stdin closes */
        printf("{\"idle_ready\": %d, \"connect_s\": %.2f}\n", nconns, connect_s);
        fflush(stdout);
        char sink[256];
        while (read(0, sink, sizeof sink) > 0) {}
        _exit(0);
    }
    t_start = now_ns() + warm * 1000000000ull;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt); /* window start as Unix time, for other tools */
    double start_epoch = rt.tv_sec + rt.tv_nsec / 1e9 + ((double)t_start - (double)now_ns()) / 1e9;
    t_end = t_start + secs * 1000000000ull;
    pthread_barrier_wait(&barrier);
    struct timespec ts = {.tv_sec = warm};
    nanosleep(&ts, NULL);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i].tid, NULL);
    getrusage(RUSAGE_SELF, &r1);
    double wall = (now_ns() - t_start) / 1e9;
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    uint64_t ops = 0, gets = 0, sets = 0, hits = 0, misses = 0, errors = 0, disc = 0, hist[NBUCKETS] = {0};
    for (int i = 0; i < nthreads; i++) {
        ops += th[i].ops; gets += th[i].gets; sets += th[i].sets; hits += th[i].hits;
        misses += th[i].misses; errors += th[i].errors; disc += th[i].disconnects;
        for (int b = 0; b < NBUCKETS; b++) hist[b] += th[i].hist[b];
    }
    double pct[3] = {0.50, 0.99, 0.999}, val[3] = {0}, maxv = 0;
    uint64_t acc = 0;
    for (int b = 0, p = 0; b < NBUCKETS; b++) {
        acc += hist[b];
        while (p < 3 && ops && acc >= pct[p] * ops) val[p++] = bucket_us(b);
        if (hist[b]) maxv = bucket_us(b);
    }
    printf("{\"conns\": %d, \"threads\": %d, \"rate_per_conn\": %g, \"seconds\": %d, \"connect_s\": %.2f, "
           "\"ops\": %llu, \"ops_per_sec\": %.1f, \"gets\": %llu, \"sets\": %llu, \"hits\": %llu, \"misses\": %llu, "
           "\"errors\": %llu, \"disconnects\": %llu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
           "\"max_us\": %.1f, \"cpu_cores\": %.3f, \"start_epoch\": %.3f}\n",
           nconns, nthreads, rate, secs, connect_s, (unsigned long long)ops, ops / (double)secs,
           (unsigned long long)gets, (unsigned long long)sets, (unsigned long long)hits, (unsigned long long)misses,
           (unsigned long long)errors, (unsigned long long)disc, val[0], val[1], val[2], maxv, cpu / wall, start_epoch);
    return errors || disc ? 1 : 0;
}
