/*
 * filehog.c - page-cache workload for the cleancache (ephemeral pages) tests.
 *
 * Runs inside a small Linux guest on a mounted file system. It writes a set
 * of files whose every page is a pure function of (seed, file, page,
 * generation), so the expected content of any page can be regenerated at any
 * time and no reference copy is kept: the file set can be larger than RAM,
 * fall out of the page cache (into cleancache, when the kernel has one) and
 * every page that comes back wrong is detected, with what it holds instead.
 *
 * Every page starts with a 32-byte header (magic, file, page, generation,
 * seed) followed by English-like words (compressible, as file contents
 * mostly are). A wrong page whose header names another (file, page,
 * generation) and whose body is exactly that page's content is reported as
 * stale: the kernel handed out an old or foreign copy of a page.
 *
 * Actions (one per process; /init runs them in this order):
 *   write   create files f000..f<N-1>, P pages each, generation 0
 *   verify  read every file (--reverse: last file first) and check every
 *           byte, the file sizes, EOF, and that deleted files are gone;
 *           --mutated: check the state after mutate
 *   mutate  file N-1: truncate to 0, rewrite its first P/2 pages with new
 *                     content (generation 1) and 1000 bytes of page P/2,
 *                     then extend it to P/2 + P/4 pages: the rest of page P/2
 *                     and the pages after it are a hole and must read as
 *                     zeros, the old pages P/2 + P/4.. are past EOF;
 *           file N-2: deleted;
 *           file 0:   pages Q..2Q-1 (Q = P/4) are read, dropped from the
 *                     page cache (POSIX_FADV_DONTNEED: with cleancache,
 *                     their copies go to it) and punched out
 *                     (FALLOC_FL_PUNCH_HOLE, size kept): they must read as
 *                     zeros, never as their old content;
 *           file N:   created (P/2 pages, generation 2); it often gets the
 *                     deleted file's inode number (reported), so a stale
 *                     page keyed by inode would show here.
 *
 * Each action prints exactly one line to stdout:
 *   ZCF-RESULT {"kind":"fs", ...}
 * with the sectors the file system's disk read and wrote during the action
 * (--disk-stat /sys/block/vdX/stat). Human progress goes to stderr.
 *
 * Exit status: 0 every page intact, 2 corruption or a wrong file (size,
 * EOF, a deleted file present), 1 usage/system error.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -o filehog qemu/filehog.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define MAX_REPORTS 5           /* bad pages named in the record */
#define CHUNK_PAGES 64          /* pages per read()/write() */
#define TAIL_BYTES 1000         /* bytes of the rewritten file's last page */
#define MAGIC "ZCFFILE"         /* 8 bytes with its NUL */
#define HEADER 32

static const char *g_dir = ".";
static const char *g_id = "fs";
static const char *g_disk_stat;
static uint64_t g_seed = 1;
static unsigned g_files;        /* N */
static uint64_t g_pages;        /* P: pages per file */
static size_t g_page;

/* ------------------------------------------------------------------ */
/* Content                                                             */
/* ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static const char *const words[64] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "you",   "that",
    "it",    "he",    "was",   "for",   "on",    "are",   "as",    "with",
    "his",   "they",  "at",    "be",    "this",  "have",  "from",  "or",
    "one",   "had",   "by",    "word",  "but",   "not",   "what",  "all",
    "were",  "we",    "when",  "your",  "can",   "said",  "there", "use",
    "an",    "each",  "which", "she",   "do",    "how",   "their", "if",
    "will",  "up",    "other", "about", "out",   "many",  "then",  "them",
    "these", "so",    "some",  "her",   "would", "make",  "like",  "time",
};
static unsigned char g_wlen[64];

struct header {
    char magic[8];
    uint32_t file, page, gen, pad;
    uint64_t seed;
};

/* The full content of page `page` of file `file` in generation `gen`. */
static void fill_page(unsigned char *buf, unsigned file, uint64_t page, unsigned gen)
{
    struct header h = { MAGIC, file, (uint32_t)page, gen, 0, g_seed };
    uint64_t s = mix64(mix64(mix64(g_seed) ^ ((uint64_t)file << 32 | page)) ^ (gen + 1));
    size_t pos = HEADER;

    memcpy(buf, &h, sizeof(h));
    while (pos < g_page) {
        uint64_t v;
        unsigned w;

        s ^= s >> 12;           /* xorshift64*, never zero: s comes from mix64 */
        s ^= s << 25;
        s ^= s >> 27;
        v = s * 0x2545f4914f6cdd1dULL;
        for (int k = 0; k < 3 && pos < g_page; k++, v >>= 21) {
            size_t n;

            w = (unsigned)(v & 63);
            n = g_wlen[w];
            if (n > g_page - pos)
                n = g_page - pos;
            memcpy(buf + pos, words[w], n);
            pos += n;
            if (pos < g_page)
                buf[pos++] = (v & 0x7c0) == 0 ? '\n' : ' ';
        }
    }
}

/* ------------------------------------------------------------------ */
/* The file set and its two states                                     */
/* ------------------------------------------------------------------ */

struct expect {
    bool exists;
    uint64_t pages;     /* pages a reader sees (the last may be partial) */
    uint64_t size;      /* bytes */
};

static unsigned truncated_file(void) { return g_files - 1; }
static unsigned deleted_file(void) { return g_files - 2; }
static unsigned created_file(void) { return g_files; }
static uint64_t rewritten_pages(void) { return g_pages / 2; }          /* H */
static uint64_t hole_pages(void) { return g_pages / 4; }               /* Q */
static unsigned punched_file(void) { return 0; }
static uint64_t punch_first(void) { return hole_pages(); }
static uint64_t punch_pages(void) { return hole_pages(); }

static bool punched(unsigned f, uint64_t p, bool mutated)
{
    return mutated && f == punched_file() && p >= punch_first() && p < punch_first() + punch_pages();
}

static struct expect file_state(unsigned f, bool mutated)
{
    struct expect e = { true, g_pages, g_pages * g_page };

    if (!mutated) {
        if (f >= g_files)
            e = (struct expect){ false, 0, 0 };
    } else if (f == truncated_file()) {
        e.pages = rewritten_pages() + hole_pages();
        e.size = e.pages * g_page;
    } else if (f == deleted_file()) {
        e = (struct expect){ false, 0, 0 };
    } else if (f == created_file()) {
        e.pages = g_pages / 2;
        e.size = e.pages * g_page;
    }
    return e;
}

/*
 * The expected content of page p of file f: generated content of `gen` for
 * its first `valid` bytes, zeros after.
 */
static void expected_page(unsigned char *buf, unsigned f, uint64_t p, bool mutated)
{
    unsigned gen = 0;
    size_t valid = g_page;

    if (mutated && f == truncated_file()) {
        gen = 1;
        if (p == rewritten_pages())
            valid = TAIL_BYTES;
        else if (p > rewritten_pages())
            valid = 0;
    } else if (mutated && f == created_file()) {
        gen = 2;
    } else if (punched(f, p, mutated)) {
        valid = 0;
    }
    if (valid)
        fill_page(buf, f, p, gen);
    memset(buf + valid, 0, g_page - valid);
}

static void file_path(char *path, size_t n, unsigned f)
{
    snprintf(path, n, "%s/f%03u", g_dir, f);
}

/* ------------------------------------------------------------------ */
/* The record                                                          */
/* ------------------------------------------------------------------ */

struct disk {
    uint64_t sectors_read, sectors_written;
};

static struct disk disk_now(void)
{
    struct disk d = { 0, 0 };
    uint64_t v[7];
    FILE *f;

    if (!g_disk_stat || !(f = fopen(g_disk_stat, "r")))
        return d;
    if (fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
               " %" SCNu64, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7) {
        d.sectors_read = v[2];
        d.sectors_written = v[6];
    }
    fclose(f);
    return d;
}

struct result {
    const char *phase;
    uint64_t pages, pages_checked, pages_corrupted, pages_stale, file_errors, bytes;
    uint64_t punched_checked;   /* pages of the punched range checked (as zeros) */
    unsigned nbad;
    char bad[MAX_REPORTS][160];
    struct disk d0;
    struct timespec t0;
    char extra[512];    /* more JSON members, each starting with a comma */
};

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void bad(struct result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(struct result *r, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "filehog: %s: %s\n", r->phase, msg);
    if (r->nbad < MAX_REPORTS)
        snprintf(r->bad[r->nbad++], sizeof(r->bad[0]), "%s", msg);
}

static void begin(struct result *r, const char *phase)
{
    memset(r, 0, sizeof(*r));
    r->phase = phase;
    r->d0 = disk_now();
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
}

static int finish(struct result *r)
{
    struct disk d = disk_now();
    double elapsed = now_s() - ((double)r->t0.tv_sec + r->t0.tv_nsec / 1e9);

    printf("ZCF-RESULT {\"kind\":\"fs\",\"id\":");
    json_string(g_id);
    printf(",\"phase\":");
    json_string(r->phase);
    printf(",\"files\":%u,\"pages_per_file\":%" PRIu64 ",\"page_size\":%zu,\"pages\":%" PRIu64
           ",\"pages_checked\":%" PRIu64 ",\"pages_corrupted\":%" PRIu64 ",\"pages_stale\":%" PRIu64
           ",\"file_errors\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"elapsed_s\":%.3f,\"mbps\":%.1f"
           ",\"disk_stat\":%s,\"sectors_read\":%" PRIu64 ",\"sectors_written\":%" PRIu64,
           g_files, g_pages, g_page, r->pages, r->pages_checked, r->pages_corrupted, r->pages_stale,
           r->file_errors, r->bytes, elapsed, elapsed > 0 ? r->bytes / (double)MIB / elapsed : 0.0,
           g_disk_stat ? "true" : "false", d.sectors_read - r->d0.sectors_read,
           d.sectors_written - r->d0.sectors_written);
    printf("%s,\"bad\":[", r->extra);
    for (unsigned i = 0; i < r->nbad; i++) {
        if (i)
            putchar(',');
        json_string(r->bad[i]);
    }
    printf("]}\n");
    fflush(stdout);
    return r->pages_corrupted || r->file_errors ? 2 : 0;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);

    if (!p) {
        fprintf(stderr, "filehog: out of memory\n");
        exit(1);
    }
    return p;
}

static void die(const char *what, const char *path)
{
    fprintf(stderr, "filehog: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

/* ------------------------------------------------------------------ */
/* Actions                                                             */
/* ------------------------------------------------------------------ */

/* Write pages [from, to) of file f in generation gen at their offsets. */
static uint64_t write_pages(int fd, const char *path, unsigned f, uint64_t from, uint64_t to,
                            unsigned gen, unsigned char *buf)
{
    uint64_t p = from;

    while (p < to) {
        uint64_t n = to - p < CHUNK_PAGES ? to - p : CHUNK_PAGES;
        size_t len = n * g_page;

        for (uint64_t i = 0; i < n; i++)
            fill_page(buf + i * g_page, f, p + i, gen);
        if (pwrite(fd, buf, len, (off_t)(p * g_page)) != (ssize_t)len)
            die("write", path);
        p += n;
    }
    return (to - from) * g_page;
}

static int act_write(void)
{
    unsigned char *buf = xmalloc(CHUNK_PAGES * g_page);
    struct result r;
    char path[4096];

    begin(&r, "write");
    for (unsigned f = 0; f < g_files; f++) {
        int fd;

        file_path(path, sizeof(path), f);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die("create", path);
        r.bytes += write_pages(fd, path, f, 0, g_pages, 0, buf);
        r.pages += g_pages;
        if (close(fd))
            die("close", path);
        fprintf(stderr, "filehog: %s: wrote f%03u\n", g_id, f);
    }
    free(buf);
    return finish(&r);
}

static int act_mutate(void)
{
    unsigned char *buf = xmalloc(CHUNK_PAGES * g_page);
    char path[4096];
    struct result r;
    struct stat st;
    uint64_t old_ino, deleted_ino, created_ino;
    unsigned t = truncated_file(), d = deleted_file(), c = created_file();
    int fd;

    begin(&r, "mutate");
    /* truncate to nothing, rewrite the first half with new content and
     * 1000 bytes of the next page, then extend: a hole up to H + Q pages */
    file_path(path, sizeof(path), t);
    fd = open(path, O_WRONLY);
    if (fd < 0 || fstat(fd, &st))
        die("open", path);
    old_ino = st.st_ino;
    if (ftruncate(fd, 0))
        die("truncate", path);
    r.bytes += write_pages(fd, path, t, 0, rewritten_pages(), 1, buf);
    fill_page(buf, t, rewritten_pages(), 1);
    if (pwrite(fd, buf, TAIL_BYTES, (off_t)(rewritten_pages() * g_page)) != TAIL_BYTES)
        die("write", path);
    r.bytes += TAIL_BYTES;
    if (ftruncate(fd, (off_t)(file_state(t, true).size)))
        die("extend", path);
    if (close(fd))
        die("close", path);

    /* read the range into the page cache and drop it from there (its
     * copies go to cleancache, if there is one), then punch it out */
    file_path(path, sizeof(path), punched_file());
    fd = open(path, O_RDWR);
    if (fd < 0)
        die("open", path);
    for (uint64_t p = punch_first(); p < punch_first() + punch_pages(); p++)
        if (pread(fd, buf, g_page, (off_t)(p * g_page)) != (ssize_t)g_page)
            die("read", path);
    errno = posix_fadvise(fd, (off_t)(punch_first() * g_page), (off_t)(punch_pages() * g_page),
                          POSIX_FADV_DONTNEED);
    if (errno)
        die("fadvise", path);
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(punch_first() * g_page),
                  (off_t)(punch_pages() * g_page)))
        die("punch a hole in", path);
    if (close(fd))
        die("close", path);

    file_path(path, sizeof(path), d);
    if (stat(path, &st))
        die("stat", path);
    deleted_ino = st.st_ino;
    if (unlink(path))
        die("delete", path);

    file_path(path, sizeof(path), c);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || fstat(fd, &st))
        die("create", path);
    created_ino = st.st_ino;
    r.bytes += write_pages(fd, path, c, 0, file_state(c, true).pages, 2, buf);
    if (close(fd))
        die("close", path);
    free(buf);

    snprintf(r.extra, sizeof(r.extra),
             ",\"truncated\":\"f%03u\",\"truncated_ino\":%" PRIu64 ",\"truncated_size\":%" PRIu64
             ",\"deleted\":\"f%03u\",\"deleted_ino\":%" PRIu64 ",\"created\":\"f%03u\""
             ",\"created_ino\":%" PRIu64 ",\"inode_reused\":%s"
             ",\"punched\":\"f%03u\",\"punched_first_page\":%" PRIu64 ",\"punched_pages\":%" PRIu64,
             t, old_ino, file_state(t, true).size, d, deleted_ino, c, created_ino,
             created_ino == deleted_ino ? "true" : "false", punched_file(), punch_first(), punch_pages());
    fprintf(stderr, "filehog: %s: truncated and rewrote f%03u, deleted f%03u (inode %" PRIu64
            "), created f%03u (inode %" PRIu64 "), punched pages %" PRIu64 "..%" PRIu64 " of f%03u\n",
            g_id, t, d, deleted_ino, c, created_ino, punch_first(), punch_first() + punch_pages() - 1,
            punched_file());
    return finish(&r);
}

/* What a wrong page holds instead, for the report. */
static void describe(struct result *r, unsigned f, uint64_t p, const unsigned char *got,
                     const unsigned char *want, unsigned char *scratch)
{
    struct header h;
    size_t i = 0;

    while (i < g_page && got[i] == want[i])
        i++;
    memcpy(&h, got, sizeof(h));
    if (!memcmp(h.magic, MAGIC, sizeof(h.magic)) && h.seed == g_seed && h.gen <= 2 &&
        h.file <= g_files && h.page < g_pages) {
        fill_page(scratch, h.file, h.page, h.gen);
        if (!memcmp(scratch, got, g_page)) {
            r->pages_stale++;
            bad(r, "f%03u page %" PRIu64 ": stale: holds f%03u page %u generation %u%s", f, p,
                h.file, h.page, h.gen, h.file == f && h.page == p ? " (another generation of this page)" : "");
            return;
        }
    }
    for (size_t k = 0; k < g_page && !got[k]; k++)
        if (k == g_page - 1) {
            bad(r, "f%03u page %" PRIu64 ": reads as zeros", f, p);
            return;
        }
    bad(r, "f%03u page %" PRIu64 ": corrupted from byte %zu", f, p, i);
}

static void verify_file(struct result *r, unsigned f, bool mutated, unsigned char *buf,
                        unsigned char *want, unsigned char *scratch)
{
    struct expect e = file_state(f, mutated);
    char path[4096];
    struct stat st;
    uint64_t p = 0;
    int fd;

    file_path(path, sizeof(path), f);
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT && !e.exists)
            return;
        if (errno != ENOENT)
            die("open", path);
        r->file_errors++;
        bad(r, "f%03u: missing", f);
        return;
    }
    if (!e.exists) {
        r->file_errors++;
        bad(r, "f%03u: exists, but should not (deleted, or not created yet)", f);
        close(fd);
        return;
    }
    if (fstat(fd, &st))
        die("stat", path);
    if ((uint64_t)st.st_size != e.size) {
        r->file_errors++;
        bad(r, "f%03u: %" PRIu64 " bytes, expected %" PRIu64, f, (uint64_t)st.st_size, e.size);
    }
    r->pages += e.pages;
    while (p < e.pages) {
        size_t want_len = (e.pages - p < CHUNK_PAGES ? e.pages - p : CHUNK_PAGES) * g_page;
        size_t got = 0;

        while (got < want_len) {        /* read() may return less than asked */
            ssize_t n = read(fd, buf + got, want_len - got);

            if (n < 0)
                die("read", path);
            if (n == 0)
                break;
            got += (size_t)n;
        }
        r->bytes += got;
        for (size_t off = 0; off + g_page <= got; off += g_page, p++) {
            expected_page(want, f, p, mutated);
            r->pages_checked++;
            r->punched_checked += punched(f, p, mutated);
            if (memcmp(buf + off, want, g_page)) {
                r->pages_corrupted++;
                describe(r, f, p, buf + off, want, scratch);
            }
        }
        if (got < want_len) {
            r->file_errors++;
            bad(r, "f%03u: EOF at page %" PRIu64 ", expected %" PRIu64 " pages", f, p, e.pages);
            break;
        }
    }
    if (p == e.pages) {                 /* and nothing after the end */
        ssize_t n = read(fd, buf, g_page);

        if (n != 0) {
            r->file_errors++;
            bad(r, "f%03u: %zd bytes past the expected EOF at page %" PRIu64, f, n, e.pages);
        }
    }
    close(fd);
}

static int act_verify(const char *phase, bool mutated, bool reverse)
{
    unsigned char *buf = xmalloc(CHUNK_PAGES * g_page);
    unsigned char *want = xmalloc(g_page), *scratch = xmalloc(g_page);
    unsigned last = created_file();     /* also checks it is absent before mutate */
    struct result r;

    begin(&r, phase);
    for (unsigned i = 0; i <= last; i++) {
        unsigned f = reverse ? last - i : i;

        verify_file(&r, f, mutated, buf, want, scratch);
        fprintf(stderr, "filehog: %s: %s: f%03u checked\n", g_id, phase, f);
    }
    snprintf(r.extra, sizeof(r.extra), ",\"order\":\"%s\",\"mutated\":%s,\"punched_pages_checked\":%" PRIu64,
             reverse ? "reverse" : "forward", mutated ? "true" : "false", r.punched_checked);
    free(buf);
    free(want);
    free(scratch);
    return finish(&r);
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: filehog --dir DIR --files N --size MIB [--seed S] [--id NAME]\n"
            "               [--disk-stat /sys/block/vdX/stat] [--phase NAME]\n"
            "               [--mutated] [--reverse] write|verify|mutate\n");
}

static uint64_t parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    bool digits = *s >= '0' && *s <= '9';
    unsigned long long v = 0;
    char *end = NULL;

    errno = 0;
    if (digits)
        v = strtoull(s, &end, 10);
    if (!digits || *end || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "filehog: %s: expected an integer %" PRIu64 "..%" PRIu64 ", got '%s'\n",
                opt, min, max, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv)
{
    enum { OPT_DIR = 1, OPT_FILES, OPT_SIZE, OPT_SEED, OPT_ID, OPT_STAT, OPT_PHASE, OPT_MUTATED,
           OPT_REVERSE, OPT_HELP };
    static const struct option opts[] = {
        { "dir", required_argument, NULL, OPT_DIR },
        { "files", required_argument, NULL, OPT_FILES },
        { "size", required_argument, NULL, OPT_SIZE },
        { "seed", required_argument, NULL, OPT_SEED },
        { "id", required_argument, NULL, OPT_ID },
        { "disk-stat", required_argument, NULL, OPT_STAT },
        { "phase", required_argument, NULL, OPT_PHASE },
        { "mutated", no_argument, NULL, OPT_MUTATED },
        { "reverse", no_argument, NULL, OPT_REVERSE },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    const char *phase = NULL, *action;
    uint64_t size_mib = 0;
    bool mutated = false, reverse = false;
    long ps = sysconf(_SC_PAGESIZE);
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_DIR: g_dir = optarg; break;
        case OPT_FILES: g_files = (unsigned)parse_uint("--files", optarg, 3, 999); break;
        case OPT_SIZE: size_mib = parse_uint("--size", optarg, 1, 65536); break;
        case OPT_SEED: g_seed = parse_uint("--seed", optarg, 0, UINT64_MAX); break;
        case OPT_ID: g_id = optarg; break;
        case OPT_STAT: g_disk_stat = optarg; break;
        case OPT_PHASE: phase = optarg; break;
        case OPT_MUTATED: mutated = true; break;
        case OPT_REVERSE: reverse = true; break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc - 1 || !g_files || !size_mib) {
        usage(stderr);
        return 1;
    }
    action = argv[optind];
    if (ps <= 0 || (size_t)ps < HEADER * 2) {
        fprintf(stderr, "filehog: unexpected page size %ld\n", ps);
        return 1;
    }
    g_page = (size_t)ps;
    g_pages = size_mib * MIB / g_page / g_files;
    if (g_pages < 4) {
        fprintf(stderr, "filehog: --size %" PRIu64 " MiB over %u files: fewer than 4 pages a file\n",
                size_mib, g_files);
        return 1;
    }
    for (int w = 0; w < 64; w++)
        g_wlen[w] = (unsigned char)strlen(words[w]);
    if (!strcmp(action, "write"))
        return act_write();
    if (!strcmp(action, "mutate"))
        return act_mutate();
    if (!strcmp(action, "verify"))
        return act_verify(phase ? phase : "verify", mutated, reverse);
    fprintf(stderr, "filehog: unknown action '%s'\n", action);
    usage(stderr);
    return 1;
}
