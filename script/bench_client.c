/*
 * HTTP/1.1 load client for script/bench.py (Linux, epoll, one thread).
 *
 * Opens N GET connections to http://HOST:PORT/PATH, spread evenly over RAMP seconds,
 * reads and discards the bodies for WINDOW seconds (from the client's start), then
 * prints one JSON document on stdout and exits (the kernel closes the sockets).
 * M of the N connections are "paused": they use a 64 KiB receive buffer (set before
 * connect), read the response headers and then never read again during the window.
 * A server that gives up on such a connection closes it, but its FIN stays queued
 * behind the unsent data (the receive window is zero), so after the window the client
 * drains the paused connections for up to 1 s to see whether the server had closed
 * them (EOF or reset); a close seen during the window is noticed too.
 *
 * Bodies may be identity or chunked (aiohttp answers HTTP/1.1 streams chunked); only
 * body bytes are counted. The first bytes of each body are parsed as MPEG-TS until the
 * first packet flagged random_access_indicator (on --pid, or any PID if -1) to report
 * how many bytes a decoder must skip before it can start, and when that packet came.
 *
 * --header adds one request header (e.g. "Authorization: Bearer ..."); with --alt-path
 * every other connection asks for that path instead (e.g. a signed URL, no header).
 * --mark S records each connection's byte count S seconds after the start, and when
 * its last byte before that came, so the caller can tell the steady rate (after the
 * joins) from the rate since connect: bytes between the last arrival before the mark
 * and the last arrival before the end, over the time between them (a rate that does
 * not depend on where the mark falls between two bursts of the server's writes).
 *
 * Build: gcc -O2 -o bench_client bench_client.c
 * Usage: bench_client --port P [--host 127.0.0.1] [--path /stream] --conns N
 *                     [--paused M] [--window S] [--ramp S] [--pid PID]
 *                     [--header H] [--alt-path P] [--mark S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TS 188
#define WIN (3 * TS)
#define HDR_MAX 8192
#define RAI_GIVE_UP (64LL * 1024 * 1024)

enum { S_IDLE, S_CONNECTING, S_HEADERS, S_BODY, S_DONE };
enum { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_END };

typedef struct {
    int fd;
    int paused;
    int state;
    int status;
    int err;
    int closed; /* the server closed (FIN, RST, or end of body) */
    int chunked, ch_state;
    int64_t ch_left;
    char hdr[HDR_MAX];
    int hdr_len;
    int64_t bytes, bytes_mark;
    double t_start, t_first, t_closed, t_rai;
    double t_last, t_last_mark; /* last body byte; the same as of the mark */
    /* MPEG-TS scan of the first bytes of the body */
    int synced, scan_done;
    uint8_t win[WIN];
    int win_len;
    int64_t win_off; /* body offset of win[0] */
    uint8_t pkt[TS];
    int pkt_fill;
    int64_t pkt_off; /* body offset of pkt[0] */
    int64_t rai_off, pat_off;
} Conn;

static double t0;
static int g_pid = -1;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void ts_packet(Conn *c, const uint8_t *p, int64_t off, double t) {
    int pid = ((p[1] & 0x1F) << 8) | p[2];
    if (pid == 0 && c->pat_off < 0) c->pat_off = off;
    if ((p[3] & 0x20) && p[4] > 0 && (p[5] & 0x40) && (g_pid < 0 || pid == g_pid)) {
        c->rai_off = off;
        c->t_rai = t;
        c->scan_done = 1;
    }
}

/* Feed body bytes [base, base + n) to the TS scanner. */
static void ts_feed(Conn *c, const uint8_t *d, size_t n, int64_t base, double t) {
    size_t i = 0;
    while (i < n && !c->scan_done) {
        if (base + (int64_t)i > RAI_GIVE_UP) {
            c->scan_done = 1;
            break;
        }
        if (!c->synced) {
            if (c->win_len == 0) c->win_off = base + (int64_t)i;
            size_t take = WIN - c->win_len;
            if (take > n - i) take = n - i;
            memcpy(c->win + c->win_len, d + i, take);
            c->win_len += (int)take;
            i += take;
            while (c->win_len == WIN) {
                if (c->win[0] == 0x47 && c->win[TS] == 0x47 && c->win[2 * TS] == 0x47) {
                    c->synced = 1;
                    for (int k = 0; k < 3 && !c->scan_done; k++)
                        ts_packet(c, c->win + k * TS, c->win_off + k * TS, t);
                    c->pkt_fill = 0;
                    c->pkt_off = c->win_off + WIN;
                    c->win_len = 0;
                    break;
                }
                memmove(c->win, c->win + 1, WIN - 1);
                c->win_len--;
                c->win_off++;
                if (i < n) {
                    c->win[c->win_len++] = d[i++];
                }
            }
        } else {
            size_t take = TS - c->pkt_fill;
            if (take > n - i) take = n - i;
            memcpy(c->pkt + c->pkt_fill, d + i, take);
            c->pkt_fill += (int)take;
            i += take;
            if (c->pkt_fill == TS) {
                if (c->pkt[0] != 0x47) {
                    /* lost sync: look again from the byte after this packet start */
                    c->synced = 0;
                    memcpy(c->win, c->pkt + 1, TS - 1);
                    c->win_len = TS - 1;
                    c->win_off = c->pkt_off + 1;
                } else {
                    ts_packet(c, c->pkt, c->pkt_off, t);
                }
                c->pkt_off += TS;
                c->pkt_fill = 0;
            }
        }
    }
}

static void body(Conn *c, const uint8_t *d, size_t n, double t) {
    if (n == 0) return;
    if (c->t_first < 0) c->t_first = t;
    c->t_last = t;
    if (!c->scan_done) ts_feed(c, d, n, c->bytes, t);
    c->bytes += (int64_t)n;
}

/* Decode (possibly chunked) body bytes. */
static void feed(Conn *c, const uint8_t *d, size_t n, double t) {
    if (!c->chunked) {
        body(c, d, n, t);
        return;
    }
    size_t i = 0;
    while (i < n && c->state == S_BODY) {
        uint8_t ch = d[i];
        switch (c->ch_state) {
        case CH_SIZE:
            i++;
            if (ch >= '0' && ch <= '9') c->ch_left = c->ch_left * 16 + (ch - '0');
            else if (ch >= 'a' && ch <= 'f') c->ch_left = c->ch_left * 16 + (ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F') c->ch_left = c->ch_left * 16 + (ch - 'A' + 10);
            else if (ch == ';') c->ch_state = CH_EXT;
            else if (ch == '\n') {
                if (c->ch_left == 0) { /* last chunk: the server ended the body */
                    c->closed = 1;
                    c->t_closed = t;
                    c->state = S_DONE;
                } else {
                    c->ch_state = CH_DATA;
                }
            }
            break;
        case CH_EXT:
            i++;
            if (ch == '\n') {
                if (c->ch_left == 0) {
                    c->closed = 1;
                    c->t_closed = t;
                    c->state = S_DONE;
                } else {
                    c->ch_state = CH_DATA;
                }
            }
            break;
        case CH_DATA: {
            size_t take = n - i;
            if ((int64_t)take > c->ch_left) take = (size_t)c->ch_left;
            body(c, d + i, take, t);
            i += take;
            c->ch_left -= (int64_t)take;
            if (c->ch_left == 0) c->ch_state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            i++;
            if (ch == '\n') {
                c->ch_state = CH_SIZE;
                c->ch_left = 0;
            }
            break;
        }
    }
}

static void finish(int ep, Conn *c, double t, int err) {
    if (c->state == S_DONE) return;
    if (!c->closed) {
        c->closed = 1;
        c->t_closed = t;
    }
    if (err && !c->err) c->err = err;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->state = S_DONE;
}

static void headers_done(int ep, Conn *c, int end, double t) {
    c->hdr[end - 4] = 0; /* terminate the header block */
    if (sscanf(c->hdr, "HTTP/%*d.%*d %d", &c->status) != 1) c->status = -1;
    for (char *p = c->hdr; (p = strcasestr(p, "transfer-encoding:")) != NULL; p++) {
        char *q = p + 18;
        while (*q == ' ' || *q == '\t') q++;
        if (strncasecmp(q, "chunked", 7) == 0) c->chunked = 1;
    }
    c->state = S_BODY;
    c->ch_state = CH_SIZE;
    c->ch_left = 0;
    int rest = c->hdr_len - end;
    if (rest > 0) feed(c, (uint8_t *)c->hdr + end, (size_t)rest, t);
    if (c->paused && c->state == S_BODY) {
        struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void on_readable(int ep, Conn *c, uint8_t *buf, size_t cap) {
    for (int round = 0; round < 4 && c->state != S_DONE; round++) {
        ssize_t r;
        if (c->state == S_HEADERS) {
            r = recv(c->fd, c->hdr + c->hdr_len, HDR_MAX - 1 - c->hdr_len, 0);
        } else {
            r = recv(c->fd, buf, cap, 0);
        }
        double t = now();
        if (r == 0) {
            finish(ep, c, t, 0);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            finish(ep, c, t, errno);
            return;
        }
        if (c->state == S_HEADERS) {
            c->hdr_len += (int)r;
            c->hdr[c->hdr_len] = 0;
            char *e = strstr(c->hdr, "\r\n\r\n");
            if (e) {
                headers_done(ep, c, (int)(e - c->hdr) + 4, t);
                if (c->paused) return;
            } else if (c->hdr_len >= HDR_MAX - 1) {
                finish(ep, c, t, EMSGSIZE);
                return;
            }
        } else {
            feed(c, buf, (size_t)r, t);
            if ((size_t)r < cap) return;
        }
    }
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --port P [--host H] [--path /stream] --conns N [--paused M]"
            " [--window S] [--ramp S] [--pid PID] [--header H] [--alt-path P]"
            " [--mark S]\n",
            argv0);
    return 2;
}

static void jnum(double v) {
    if (v < 0) printf("null");
    else printf("%.3f", v);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = "/stream", *header = NULL, *alt_path = NULL;
    double mark = -1;
    int port = 0, nconns = 1, npaused = 0;
    double window = 15.0, ramp = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage(argv[0]);
        const char *v = argv[++i];
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--paused")) npaused = atoi(v);
        else if (!strcmp(a, "--window")) window = atof(v);
        else if (!strcmp(a, "--ramp")) ramp = atof(v);
        else if (!strcmp(a, "--pid")) g_pid = atoi(v);
        else if (!strcmp(a, "--header")) header = v;
        else if (!strcmp(a, "--alt-path")) alt_path = v;
        else if (!strcmp(a, "--mark")) mark = atof(v);
        else return usage(argv[0]);
    }
    if (port <= 0 || nconns <= 0 || npaused < 0 || npaused > nconns) return usage(argv[0]);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "bad host %s\n", host);
        return 2;
    }
    /* req[0]: --path with --header; req[1]: --alt-path without it. */
    char req[2][4096];
    int req_len[2];
    for (int k = 0; k < 2; k++) {
        const char *p = k && alt_path ? alt_path : path;
        const char *h = k && alt_path ? NULL : header;
        req_len[k] = snprintf(req[k], sizeof req[k],
                              "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: bench_client\r\n"
                              "Accept: */*\r\n%s%s\r\n",
                              p, host, port, h ? h : "", h ? "\r\n" : "");
        if (req_len[k] >= (int)sizeof req[k]) return usage(argv[0]);
    }

    Conn *conns = calloc((size_t)nconns, sizeof(Conn));
    if (!conns) return 1;
    /* Paused connections spread evenly among the others. */
    for (int k = 0; k < npaused; k++) conns[(int)((k + 0.5) * nconns / npaused)].paused = 1;
    for (int i = 0; i < nconns; i++) {
        Conn *c = &conns[i];
        c->fd = -1;
        c->t_first = c->t_closed = c->t_rai = c->t_last = c->t_last_mark = -1;
        c->rai_off = c->pat_off = -1;
        c->status = 0;
    }

    size_t cap = 256 * 1024;
    uint8_t *buf = malloc(cap);
    int ep = epoll_create1(0);
    struct epoll_event *evs = calloc(1024, sizeof *evs);
    if (!buf || ep < 0 || !evs) return 1;

    t0 = now();
    double end = t0 + window;
    double t_mark = -1;
    int next = 0;
    for (;;) {
        double t = now();
        if (mark >= 0 && t_mark < 0 && t >= t0 + mark) {
            t_mark = t;
            for (int i = 0; i < nconns; i++) {
                conns[i].bytes_mark = conns[i].bytes;
                conns[i].t_last_mark = conns[i].t_last;
            }
        }
        while (next < nconns && t >= t0 + ramp * next / nconns) {
            Conn *c = &conns[next++];
            c->t_start = t;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0) {
                c->err = errno;
                c->state = S_DONE;
                continue;
            }
            if (c->paused) {
                int sz = 64 * 1024;
                setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
            }
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int r = connect(c->fd, (struct sockaddr *)&addr, sizeof addr);
            if (r < 0 && errno != EINPROGRESS) {
                c->err = errno;
                c->state = S_DONE;
                continue;
            }
            c->state = S_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        }
        if (t >= end) break;
        double wake = end;
        if (mark >= 0 && t_mark < 0 && t0 + mark < wake) wake = t0 + mark;
        if (next < nconns) {
            double at = t0 + ramp * next / nconns;
            if (at < wake) wake = at;
        }
        int timeout = (int)((wake - t) * 1000.0);
        if (timeout < 0) timeout = 0;
        int n = epoll_wait(ep, evs, 1024, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            Conn *c = evs[k].data.ptr;
            uint32_t e = evs[k].events;
            double te = now();
            if (c->state == S_CONNECTING) {
                int soerr = 0;
                socklen_t len = sizeof soerr;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
                if (soerr || (e & (EPOLLERR | EPOLLHUP))) {
                    finish(ep, c, te, soerr ? soerr : ECONNREFUSED);
                    continue;
                }
                int k = (int)(c - conns) % 2;
                if (send(c->fd, req[k], (size_t)req_len[k], MSG_NOSIGNAL) != req_len[k]) {
                    finish(ep, c, te, errno ? errno : EIO);
                    continue;
                }
                c->state = S_HEADERS;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            if (c->paused && c->state == S_BODY) {
                /* Never read: only notice that the server closed the connection. */
                if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) finish(ep, c, te, 0);
                continue;
            }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) on_readable(ep, c, buf, cap);
        }
    }

    double t_end = now();

    /* Drain the paused connections: a close by the server is queued behind data. */
    int pending = 0;
    for (int i = 0; i < nconns; i++) {
        Conn *c = &conns[i];
        if (c->state == S_DONE || c->fd < 0) continue;
        if (c->paused && c->state == S_BODY) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            pending++;
        } else {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
    }
    double drain_end = now() + 1.0;
    while (pending > 0) {
        double t = now();
        if (t >= drain_end) break;
        int n = epoll_wait(ep, evs, 1024, (int)((drain_end - t) * 1000.0) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int k = 0; k < n; k++) {
            Conn *c = evs[k].data.ptr;
            for (;;) {
                ssize_t r = recv(c->fd, buf, cap, 0);
                if (r > 0) continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (r < 0 && errno == EINTR) continue;
                c->closed = 1; /* EOF or reset: the server had closed it */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->state = S_DONE;
                pending--;
                break;
            }
        }
    }
    printf("{\"window_s\":%.3f,\"mark_s\":", t_end - t0);
    jnum(t_mark >= 0 ? t_mark - t0 : -1);
    printf(",\"conns\":[");
    for (int i = 0; i < nconns; i++) {
        Conn *c = &conns[i];
        double ts = c->t_start > 0 ? c->t_start - t0 : -1;
        printf("%s{\"p\":%d,\"st\":%d,\"e\":%d,\"b\":%lld,\"m\":%lld,\"t\":", i ? "," : "",
               c->paused, c->status, c->err, (long long)c->bytes, (long long)c->bytes_mark);
        jnum(ts >= 0 ? ts * 1000 : -1);
        printf(",\"ttfb\":");
        jnum(c->t_first >= 0 ? (c->t_first - c->t_start) * 1000 : -1);
        printf(",\"rai_ms\":");
        jnum(c->t_rai >= 0 ? (c->t_rai - c->t_start) * 1000 : -1);
        printf(",\"tm\":");
        jnum(c->t_last_mark >= 0 ? (c->t_last_mark - t0) * 1000 : -1);
        printf(",\"te\":");
        jnum(c->t_last >= 0 ? (c->t_last - t0) * 1000 : -1);
        printf(",\"rai_b\":%lld,\"pat_b\":%lld,\"c\":%d,\"tc\":", (long long)c->rai_off,
               (long long)c->pat_off, c->closed);
        jnum(c->t_closed >= 0 ? (c->t_closed - t0) * 1000 : -1);
        printf("}");
    }
    printf("]}\n");
    fflush(stdout);
    return 0;
}
