/*
 * memhog.c - memory-pressure workload for the compressed swap cache tests.
 *
 * Runs inside a small Linux guest. It maps SIZE MiB of anonymous memory,
 * fills every page with content that is a pure function of (seed, page
 * index, pattern), then re-verifies all pages for a number of passes
 * (sequential, random order, sequential, ...) while re-dirtying every
 * second page. Because the expected content can be regenerated at any
 * time, no reference copy is kept, so the whole mapping can be pushed out
 * to swap and any page that comes back wrong is detected.
 *
 * A page whose swapped copy the kernel cannot read back may instead raise
 * SIGBUS (a failed zcache load, a RAMster peer that died holding it). That
 * is caught per page: the page counts as lost (pages_sigbus), not as
 * corrupted, and is never touched again, since every further access would
 * only raise SIGBUS again. pages_verified counts the checks that found the
 * page intact: a lost page is checked (visited) but never verified.
 *
 * With --thp the mapping is 2 MiB aligned and madvise(MADV_HUGEPAGE)'d, so
 * swap has to deal with transparent huge pages; without it the mapping is
 * kept in base pages.
 *
 * Each phase prints exactly one line to stdout:
 *   ZCF-RESULT {"kind":"workload", ...}
 * Human progress goes to stderr.
 *
 * Exit status: 0 all pages intact, 2 corruption found (whatever else),
 * 3 pages lost to SIGBUS but none corrupted (the kernel refused to return
 * stale data), 1 usage/system error.
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -o memhog qemu/memhog.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <sys/io.h>
#define HAVE_PORT_IO 1
#endif

#define MIB (1024u * 1024u)
#define HPAGE (2u * MIB)         /* x86_64 PMD-sized transparent huge page */
#define MAX_REPORTS 5            /* corrupted / lost pages printed per phase */
#define QEMU_EXIT_PORT 0xf4      /* isa-debug-exit iobase */

enum pattern { PAT_ZERO, PAT_TEXT, PAT_RANDOM, PAT_MIXED };
static const char *const pattern_names[] = { "zero", "text", "random", "mixed" };

/* What a single page holds; "mixed" picks one of these per page. */
enum kind { K_ZERO, K_TEXT, K_RANDOM, K_HALF };

/* Salts keep the per-page generators independent of each other. */
enum salt { SALT_KIND = 1, SALT_TEXT, SALT_RANDOM, SALT_HALF, SALT_PERM };

/* Global run configuration (set once in main). */
static const char *g_id = "hog";
static enum pattern g_pattern = PAT_MIXED;
static uint64_t g_seed = 1;
static size_t g_page;            /* page size in bytes */
static size_t g_npages;
static unsigned char *g_mem;     /* the pages, g_npages * g_page bytes */
static bool g_thp;               /* --thp: back g_mem with huge pages */

/*
 * Pages that raised SIGBUS, one bit each. Such a page stays lost for the
 * rest of the run, so it is skipped (not re-read, not re-dirtied) by all
 * later passes and phases.
 */
static unsigned char *g_lost;
static uint64_t g_nlost;

/*
 * SIGBUS recovery: while g_fault_armed is set, the page access in progress
 * was started under sigsetjmp(g_fault_env) and the handler may jump back.
 */
static sigjmp_buf g_fault_env;
static volatile sig_atomic_t g_fault_armed;

/* ------------------------------------------------------------------ */
/* Pseudo-random numbers                                               */
/* ------------------------------------------------------------------ */

/* splitmix64 finaliser: a good 64-bit mixing function. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Hash of (a, b, salt), used to seed per-page / per-pass generators. */
static uint64_t hash3(uint64_t a, uint64_t b, uint64_t salt)
{
    return mix64(mix64(mix64(a) ^ b) ^ salt);
}

/* xorshift64* generator; state must never be zero. */
struct rng {
    uint64_t s;
};

static void rng_init(struct rng *r, uint64_t seed)
{
    r->s = seed ? seed : 0x2545f4914f6cdd1dULL;
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* ------------------------------------------------------------------ */
/* Page content                                                        */
/* ------------------------------------------------------------------ */

/* 64 common English words; 6 random bits pick one. */
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

/* Append up to n bytes of src at buf[pos], never past len; new position. */
static size_t append(unsigned char *buf, size_t pos, size_t len,
                     const char *src, size_t n)
{
    if (n > len - pos)
        n = len - pos;
    memcpy(buf + pos, src, n);
    return pos + n;
}

/*
 * English-like text. Each page first picks a small set of short phrases
 * (2-3 words); the text is then a seeded sequence of those phrases (~70%)
 * and single random words (~30%), each followed by a separator: mostly a
 * space, some commas, full stops and newlines. The repetition of phrases
 * within a page is what makes it compress like prose (about 2.5x LZO).
 */
#define TEXT_PHRASES 16

struct phrase {
    char s[24];                 /* 3 words of <= 5 letters + 2 spaces */
    size_t n;
};

static void fill_text(unsigned char *buf, size_t len, uint64_t seed)
{
    static const char *const seps[4] = { " ", ", ", ". ", ".\n" };
    struct phrase ph[TEXT_PHRASES];
    struct rng r;
    size_t pos = 0;

    rng_init(&r, seed);
    for (int i = 0; i < TEXT_PHRASES; i++) {
        uint64_t v = rng_next(&r);
        int nwords = 2 + (int)(v & 1);

        ph[i].n = 0;
        for (int w = 0; w < nwords; w++) {
            const char *word = words[(v >> (1 + 6 * w)) & 63];
            size_t wl = strlen(word);

            if (w > 0)
                ph[i].s[ph[i].n++] = ' ';
            memcpy(ph[i].s + ph[i].n, word, wl);
            ph[i].n += wl;
        }
    }

    while (pos < len) {
        uint64_t v = rng_next(&r);
        unsigned s = (unsigned)((v >> 16) & 31);
        const char *sep = seps[s < 25 ? 0 : s < 28 ? 1 : s < 30 ? 2 : 3];

        if ((v & 15) < 5) {             /* 5/16: a single random word */
            const char *word = words[(v >> 4) & 63];

            pos = append(buf, pos, len, word, strlen(word));
        } else {                        /* 11/16: one of the page's phrases */
            const struct phrase *p = &ph[(v >> 10) & (TEXT_PHRASES - 1)];

            pos = append(buf, pos, len, p->s, p->n);
        }
        if (pos < len)
            pos = append(buf, pos, len, sep, sep[1] ? 2 : 1);
    }
}

/* Incompressible bytes straight from xorshift64*. */
static void fill_random(unsigned char *buf, size_t len, uint64_t seed)
{
    struct rng r;
    size_t i;

    rng_init(&r, seed);
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(&r);
        memcpy(buf + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = rng_next(&r);
        memcpy(buf + i, &v, len - i);
    }
}

/* Which kind of content page idx holds. */
static enum kind page_kind(size_t idx)
{
    unsigned h;

    switch (g_pattern) {
    case PAT_ZERO:
        return K_ZERO;
    case PAT_TEXT:
        return K_TEXT;
    case PAT_RANDOM:
        return K_RANDOM;
    case PAT_MIXED:
        break;
    }
    /* mixed: 25% zero, 35% text, 20% random, 20% half text/half random */
    h = (unsigned)(hash3(g_seed, idx, SALT_KIND) % 100);
    if (h < 25)
        return K_ZERO;
    if (h < 60)
        return K_TEXT;
    if (h < 80)
        return K_RANDOM;
    return K_HALF;
}

/*
 * Write the expected content of page idx into buf (g_page bytes).
 * Non-zero pages carry (index, seed) in their first 16 bytes so a page
 * that comes back at the wrong place is caught; zero pages stay all zero.
 */
static void expected_page(unsigned char *buf, size_t idx)
{
    size_t half = g_page / 2;
    uint64_t stamp[2] = { (uint64_t)idx, g_seed };

    switch (page_kind(idx)) {
    case K_ZERO:
        memset(buf, 0, g_page);
        return;
    case K_TEXT:
        fill_text(buf, g_page, hash3(g_seed, idx, SALT_TEXT));
        break;
    case K_RANDOM:
        fill_random(buf, g_page, hash3(g_seed, idx, SALT_RANDOM));
        break;
    case K_HALF:
        fill_text(buf, half, hash3(g_seed, idx, SALT_TEXT));
        fill_random(buf + half, g_page - half, hash3(g_seed, idx, SALT_HALF));
        break;
    }
    memcpy(buf, stamp, sizeof(stamp));
}

/* ------------------------------------------------------------------ */
/* Helpers: time, progress, vmstat, JSON                               */
/* ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints "memhog: <id>: <what> N%" each time another 10% is done. */
struct progress {
    const char *what;
    size_t total;
    unsigned next;              /* next tenth to report, 1..10 */
};

static void progress_start(struct progress *p, const char *what, size_t total)
{
    p->what = what;
    p->total = total;
    p->next = 1;
}

static void progress_update(struct progress *p, size_t done)
{
    /* done * 10 >= total * next, i.e. next*10% reached */
    if (p->next > 10 || done * 10 < p->total * p->next)
        return;
    while (p->next <= 10 && done * 10 >= p->total * p->next)
        p->next++;
    fprintf(stderr, "memhog: %s: %s %u%%\n", g_id, p->what, (p->next - 1) * 10);
}

/* Current pswpin/pswpout counters; 0 if /proc/vmstat is unreadable. */
static void read_vmstat(uint64_t *pswpin, uint64_t *pswpout)
{
    char name[64];
    unsigned long long v;
    FILE *f;

    *pswpin = *pswpout = 0;
    f = fopen("/proc/vmstat", "r");
    if (!f)
        return;
    while (fscanf(f, "%63s %llu", name, &v) == 2) {
        if (strcmp(name, "pswpin") == 0)
            *pswpin = v;
        else if (strcmp(name, "pswpout") == 0)
            *pswpout = v;
    }
    fclose(f);
}

static uint64_t delta(uint64_t end, uint64_t start)
{
    return end >= start ? end - start : 0;
}

/*
 * AnonHugePages of this process in KiB: how much of the mapping really is
 * in huge pages. 0 if smaps_rollup (Linux 4.14+) or the field is missing.
 */
static uint64_t read_anon_huge_kib(void)
{
    char line[256];
    unsigned long long v;
    uint64_t kib = 0;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "AnonHugePages: %llu kB", &v) == 1) {
            kib = v;
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Print s as a JSON string literal. */
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

/* Results of one phase ("run" or "recheck"). */
struct phase {
    const char *name;
    unsigned passes;
    uint64_t pages_checked;
    uint64_t pages_verified;    /* checks that found the page intact */
    uint64_t pages_corrupted;   /* distinct pages found corrupted */
    uint64_t pages_sigbus;      /* pages lost to SIGBUS by the phase's end */
    unsigned reported;          /* corrupted pages printed */
    unsigned sigbus_reported;   /* lost pages printed */
    uint64_t anon_huge_kib;     /* AnonHugePages when the phase's check began */
    double elapsed_s, fill_s, verify_s;
    uint64_t pswpin_delta, pswpout_delta;
};

static double mib_per_s(double mib, double secs)
{
    return secs > 0 ? mib / secs : 0.0;
}

/* The one machine-readable line of a phase. */
static void print_result(const struct phase *ph, size_t size_mib)
{
    double fill_mib = ph->fill_s > 0 ? (double)size_mib : 0.0;
    double verify_mib = (double)size_mib * ph->passes;

    printf("ZCF-RESULT {\"kind\":\"workload\",\"id\":");
    json_string(g_id);
    printf(",\"phase\":\"%s\",\"pattern\":\"%s\",\"bytes\":%zu,\"pages\":%zu,"
           "\"passes\":%u,\"pages_checked\":%" PRIu64 ",\"pages_verified\":%" PRIu64
           ",\"pages_corrupted\":%" PRIu64
           ",\"pages_sigbus\":%" PRIu64 ",\"elapsed_s\":%.3f,\"fill_mbps\":%.1f,"
           "\"verify_mbps\":%.1f,\"pswpin_delta\":%" PRIu64 ",\"pswpout_delta\":%" PRIu64
           ",\"thp\":%s,\"anon_huge_kib\":%" PRIu64 "}\n",
           ph->name, pattern_names[g_pattern], g_npages * g_page, g_npages,
           ph->passes, ph->pages_checked, ph->pages_verified, ph->pages_corrupted,
           ph->pages_sigbus,
           ph->elapsed_s, mib_per_s(fill_mib, ph->fill_s),
           mib_per_s(verify_mib, ph->verify_s), ph->pswpin_delta, ph->pswpout_delta,
           g_thp ? "true" : "false", ph->anon_huge_kib);
    fflush(stdout);
}

/* ------------------------------------------------------------------ */
/* SIGBUS-guarded page access                                          */
/* ------------------------------------------------------------------ */

/*
 * A SIGBUS on a page of g_mem while a guarded access runs means the kernel
 * could not give us that page's data: jump back to the access, which
 * reports the page as lost. Any other SIGBUS is a real bug (or was sent by
 * someone), so it must still kill the process: restore the default action
 * and re-raise. si_code > 0 means the kernel raised it for a fault, which
 * is the only case where si_addr is meaningful.
 */
static void sigbus_handler(int sig, siginfo_t *si, void *ucontext)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    uintptr_t lo = (uintptr_t)g_mem;

    (void)ucontext;
    if (g_fault_armed && si->si_code > 0 && addr >= lo &&
        addr - lo < g_npages * g_page) {
        g_fault_armed = 0;
        siglongjmp(g_fault_env, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static int install_sigbus_handler(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sigbus_handler;
    /*
     * SA_NODEFER: SIGBUS stays unblocked in the handler, so jumping out of
     * it leaves the signal mask as it was, and the per-page sigsetjmp need
     * not save the mask (which would cost a syscall per page). It also
     * lets the re-raise of a foreign SIGBUS kill us at once.
     */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, NULL) != 0) {
        fprintf(stderr, "memhog: sigaction(SIGBUS): %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * The signal fences keep the compiler from moving page accesses out of
 * the armed window: a fault outside it would kill the process.
 */
static inline void guard_arm(void)
{
    g_fault_armed = 1;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void guard_disarm(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    g_fault_armed = 0;
}

static bool page_lost(size_t idx)
{
    return g_lost[idx / 8] & (1u << (idx % 8));
}

/* Page idx raised SIGBUS: remember it for good and report the first few. */
static void mark_lost(size_t idx, struct phase *ph)
{
    g_lost[idx / 8] |= (unsigned char)(1u << (idx % 8));
    g_nlost++;
    if (ph->sigbus_reported < MAX_REPORTS) {
        fprintf(stderr, "memhog: %s: page %zu lost: SIGBUS on access\n",
                g_id, idx);
        ph->sigbus_reported++;
    }
}

/* Write page idx's expected content in place; false if it raised SIGBUS. */
static bool fill_page(size_t idx)
{
    if (sigsetjmp(g_fault_env, 0) != 0)
        return false;
    guard_arm();
    expected_page(g_mem + idx * g_page, idx);
    guard_disarm();
    return true;
}

enum access { ACC_INTACT, ACC_CORRUPT, ACC_SIGBUS };

/*
 * Compare page idx with its expected content in scratch and, if intact and
 * rewrite is set, write it back so it is dirty again. For a corrupted page
 * *off is the first differing byte; it is found inside the guard too, as
 * the page may have been swapped out again since the compare.
 */
static enum access access_page(size_t idx, const unsigned char *scratch,
                               bool rewrite, size_t *off)
{
    unsigned char *p = g_mem + idx * g_page;
    size_t i = 0;

    if (sigsetjmp(g_fault_env, 0) != 0)
        return ACC_SIGBUS;
    guard_arm();
    if (memcmp(p, scratch, g_page) == 0) {
        if (rewrite)
            memcpy(p, scratch, g_page);
        guard_disarm();
        return ACC_INTACT;
    }
    while (i < g_page && p[i] == scratch[i])
        i++;
    guard_disarm();
    *off = i;
    return ACC_CORRUPT;
}

/* ------------------------------------------------------------------ */
/* Fill and verify                                                     */
/* ------------------------------------------------------------------ */

static void fill_all(struct phase *ph)
{
    struct progress pg;

    progress_start(&pg, "fill", g_npages);
    for (size_t i = 0; i < g_npages; i++) {
        if (!fill_page(i))
            mark_lost(i, ph);
        progress_update(&pg, i + 1);
    }
}

/*
 * Check page idx against its expected content (generated into scratch)
 * and, if intact and rewrite is set, re-dirty it. Returns true if intact.
 * Corrupted pages are counted once per phase (tracked in the bitmap
 * `seen`) and the first few are reported. A lost page (SIGBUS now or
 * earlier) counts as checked, since the kernel answered for it by refusing
 * its data, but not as corrupted.
 */
static bool check_page(size_t idx, bool rewrite, unsigned char *scratch,
                       unsigned char *seen, struct phase *ph)
{
    size_t off = 0;

    ph->pages_checked++;
    if (page_lost(idx))
        return false;
    expected_page(scratch, idx);
    switch (access_page(idx, scratch, rewrite, &off)) {
    case ACC_INTACT:
        ph->pages_verified++;
        return true;
    case ACC_SIGBUS:
        mark_lost(idx, ph);
        return false;
    case ACC_CORRUPT:
        break;
    }

    if (!(seen[idx / 8] & (1u << (idx % 8)))) {
        seen[idx / 8] |= (unsigned char)(1u << (idx % 8));
        ph->pages_corrupted++;
        if (ph->reported < MAX_REPORTS) {
            fprintf(stderr, "memhog: %s: page %zu corrupted at byte %zu\n",
                    g_id, idx, off);
            ph->reported++;
        }
    }
    return false;
}

/* Fisher-Yates shuffle of 0..n-1, seeded per pass. */
static void make_permutation(size_t *order, size_t n, uint64_t seed)
{
    struct rng r;

    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next(&r) % (i + 1));
        size_t t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
}

/*
 * One verification pass. Odd passes go in page order, even passes in a
 * seeded random order. Every second page touched (if intact) is rewritten
 * with its own content so it is dirty again and must be swapped out anew.
 * Corrupted pages are left as they are, so the damage stays visible; lost
 * pages are not touched at all.
 */
static void verify_pass(unsigned pass, bool rewrite, size_t *order,
                        unsigned char *scratch, unsigned char *seen,
                        struct phase *ph, const char *label)
{
    bool shuffled = order && pass % 2 == 0;
    struct progress pg;

    if (shuffled)
        make_permutation(order, g_npages, hash3(g_seed, pass, SALT_PERM));
    progress_start(&pg, label, g_npages);
    for (size_t t = 0; t < g_npages; t++) {
        size_t idx = shuffled ? order[t] : t;

        check_page(idx, rewrite && t % 2 == 1, scratch, seen, ph);
        progress_update(&pg, t + 1);
    }
}

/* ------------------------------------------------------------------ */
/* Special modes                                                       */
/* ------------------------------------------------------------------ */

/*
 * Test hook for the SIGBUS path without a kernel that raises it: replace
 * page idx by a page of a shared file mapping, then truncate the file to
 * 0. Any access to a shared mapping beyond EOF raises a real SIGBUS, just
 * as a swapped page that cannot be read back will.
 */
static int inject_sigbus(size_t idx)
{
    const char *dir = getenv("TMPDIR");
    size_t n;
    char *path;
    void *p;
    int fd;

    if (!dir || !*dir)
        dir = "/tmp";
    n = strlen(dir) + sizeof("/memhog-sigbus-XXXXXX");
    path = malloc(n);
    if (!path) {
        fprintf(stderr, "memhog: out of memory\n");
        return -1;
    }
    snprintf(path, n, "%s/memhog-sigbus-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "memhog: --inject-sigbus: cannot create '%s': %s\n",
                path, strerror(errno));
        free(path);
        return -1;
    }
    /* The mapping itself keeps the file alive, so unlink it right away. */
    unlink(path);
    free(path);
    if (ftruncate(fd, (off_t)g_page) != 0)
        goto fail;
    p = mmap(g_mem + idx * g_page, g_page, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0)
        goto fail;
    close(fd);
    return 0;
fail:
    fprintf(stderr, "memhog: --inject-sigbus: %s\n", strerror(errno));
    close(fd);
    return -1;
}

/* Ask QEMU's isa-debug-exit device to quit with status (code<<1)|1. */
static int qemu_exit(unsigned code)
{
    fflush(stdout);
    fflush(stderr);
#ifdef HAVE_PORT_IO
    if (ioperm(QEMU_EXIT_PORT, 1, 1) != 0) {
        fprintf(stderr, "memhog: --qemu-exit: ioperm(0x%x): %s\n",
                QEMU_EXIT_PORT, strerror(errno));
        return 1;
    }
    outb((unsigned char)code, QEMU_EXIT_PORT);
    /* Still running: nothing at port 0xf4 stopped the machine. */
    fprintf(stderr, "memhog: --qemu-exit: no isa-debug-exit device at 0x%x\n",
            QEMU_EXIT_PORT);
#else
    (void)code;
    fprintf(stderr, "memhog: --qemu-exit: port I/O not supported on this CPU\n");
#endif
    return 1;
}

/* Create PATH.ready, then wait (100 ms polls) until PATH exists. */
static int hold_until(const char *path)
{
    size_t n = strlen(path) + sizeof(".ready");
    char *ready = malloc(n);
    struct timespec tick = { 0, 100 * 1000 * 1000 };
    int fd;

    if (!ready) {
        fprintf(stderr, "memhog: out of memory\n");
        return -1;
    }
    snprintf(ready, n, "%s.ready", path);
    fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "memhog: --hold-file: cannot create '%s': %s\n",
                ready, strerror(errno));
        free(ready);
        return -1;
    }
    close(fd);
    free(ready);

    fprintf(stderr, "memhog: %s: holding memory until '%s' exists\n", g_id, path);
    while (access(path, F_OK) != 0)
        nanosleep(&tick, NULL);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: memhog --size MIB [--pattern zero|text|mixed|random]\n"
            "              [--passes N] [--seed S] [--id NAME]\n"
            "              [--thp] [--hold-file PATH]\n"
            "              [--inject-corruption PAGE] [--inject-sigbus PAGE]\n"
            "       memhog --qemu-exit CODE\n");
}

/* Parse a decimal integer in [min, max] or exit 1 naming the option. */
static uint64_t parse_uint(const char *opt, const char *s, uint64_t min,
                           uint64_t max)
{
    bool digits = *s >= '0' && *s <= '9';   /* strtoull accepts "-5", " 5" */
    unsigned long long v = 0;
    char *end = NULL;

    errno = 0;
    if (digits)
        v = strtoull(s, &end, 10);
    if (!digits || *end || v < min) {
        fprintf(stderr, "memhog: %s: expected a %s integer, got '%s'\n",
                opt, min > 0 ? "positive" : "non-negative", s);
        exit(1);
    }
    if (errno == ERANGE || v > max) {
        fprintf(stderr, "memhog: %s: expected at most %" PRIu64 ", got '%s'\n",
                opt, max, s);
        exit(1);
    }
    return v;
}

int main(int argc, char **argv)
{
    enum { OPT_SIZE = 1, OPT_PATTERN, OPT_PASSES, OPT_SEED, OPT_ID, OPT_HOLD,
           OPT_INJECT, OPT_INJECT_SIGBUS, OPT_THP, OPT_QEMU_EXIT, OPT_HELP };
    static const struct option opts[] = {
        { "size", required_argument, NULL, OPT_SIZE },
        { "pattern", required_argument, NULL, OPT_PATTERN },
        { "passes", required_argument, NULL, OPT_PASSES },
        { "seed", required_argument, NULL, OPT_SEED },
        { "id", required_argument, NULL, OPT_ID },
        { "hold-file", required_argument, NULL, OPT_HOLD },
        { "inject-corruption", required_argument, NULL, OPT_INJECT },
        { "inject-sigbus", required_argument, NULL, OPT_INJECT_SIGBUS },
        { "thp", no_argument, NULL, OPT_THP },
        { "qemu-exit", required_argument, NULL, OPT_QEMU_EXIT },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    uint64_t size_mib = 0, inject = 0, inject_bus = 0;
    unsigned passes = 2;
    bool do_inject = false, do_inject_bus = false;
    const char *hold = NULL;
    long qemu_code = -1;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SIZE:
            size_mib = parse_uint("--size", optarg, 1, SIZE_MAX / MIB);
            break;
        case OPT_PATTERN: {
            int i;

            for (i = 0; i < 4 && strcmp(optarg, pattern_names[i]) != 0; i++)
                ;
            if (i == 4) {
                fprintf(stderr, "memhog: --pattern: expected zero, text, mixed "
                        "or random, got '%s'\n", optarg);
                return 1;
            }
            g_pattern = (enum pattern)i;
            break;
        }
        case OPT_PASSES:
            passes = (unsigned)parse_uint("--passes", optarg, 0, 1000000);
            break;
        case OPT_SEED:
            g_seed = parse_uint("--seed", optarg, 0, UINT64_MAX);
            break;
        case OPT_ID:
            g_id = optarg;
            break;
        case OPT_HOLD:
            hold = optarg;
            break;
        case OPT_INJECT:
            inject = parse_uint("--inject-corruption", optarg, 0, UINT64_MAX);
            do_inject = true;
            break;
        case OPT_INJECT_SIGBUS:
            inject_bus = parse_uint("--inject-sigbus", optarg, 0, UINT64_MAX);
            do_inject_bus = true;
            break;
        case OPT_THP:
            g_thp = true;
            break;
        case OPT_QEMU_EXIT:
            qemu_code = (long)parse_uint("--qemu-exit", optarg, 0, 255);
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:                /* getopt already printed the reason */
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "memhog: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (qemu_code >= 0)
        return qemu_exit((unsigned)qemu_code);
    if (size_mib == 0) {
        fprintf(stderr, "memhog: --size: option is required\n");
        usage(stderr);
        return 1;
    }

    long ps = sysconf(_SC_PAGESIZE);
    if (ps < 64 || ps % 8 != 0) {
        fprintf(stderr, "memhog: unexpected page size %ld\n", ps);
        return 1;
    }
    g_page = (size_t)ps;
    g_npages = (size_t)size_mib * MIB / g_page;
    if (do_inject && inject >= g_npages) {
        fprintf(stderr, "memhog: --inject-corruption: page %" PRIu64
                " out of range (0..%zu)\n", inject, g_npages - 1);
        return 1;
    }
    if (do_inject_bus && inject_bus >= g_npages) {
        fprintf(stderr, "memhog: --inject-sigbus: page %" PRIu64
                " out of range (0..%zu)\n", inject_bus, g_npages - 1);
        return 1;
    }
    /* One page cannot be both: the lost page would hide the corruption. */
    if (do_inject && do_inject_bus && inject == inject_bus) {
        fprintf(stderr, "memhog: --inject-sigbus and --inject-corruption "
                "must name different pages\n");
        return 1;
    }
    size_t len = g_npages * g_page;
    if (g_thp && len > SIZE_MAX - HPAGE) {
        fprintf(stderr, "memhog: --size: too large for --thp\n");
        return 1;
    }

    unsigned char *scratch = malloc(g_page);
    unsigned char *seen = calloc(g_npages / 8 + 1, 1);
    size_t *order = passes >= 2 ? malloc(g_npages * sizeof(*order)) : NULL;
    g_lost = calloc(g_npages / 8 + 1, 1);
    if (!scratch || !seen || !g_lost || (passes >= 2 && !order)) {
        fprintf(stderr, "memhog: out of memory for bookkeeping\n");
        return 1;
    }
    /*
     * Lock what memhog itself needs (text, data, heap, stack, the
     * bookkeeping above) before the big mapping exists: under pressure
     * only the pages under test swap, so a page lost on swap-in (SIGBUS
     * from a failed load) is always one of them, never memhog's own.
     */
    if (mlockall(MCL_CURRENT) != 0)
        fprintf(stderr, "memhog: %s: mlockall: %s (own pages may swap)\n",
                g_id, strerror(errno));

    /*
     * One private anonymous mapping, faulted in by the fill itself. A huge
     * page needs a 2 MiB aligned virtual range, so with --thp map 2 MiB
     * more and start g_mem at the first boundary inside; munmap still
     * takes the whole mapping (map_base, map_len).
     */
    size_t map_len = len + (g_thp ? HPAGE : 0);
    unsigned char *map_base = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_base == MAP_FAILED) {
        fprintf(stderr, "memhog: mmap of %" PRIu64 " MiB failed: %s\n",
                size_mib, strerror(errno));
        return 1;
    }
    if (g_thp) {
        uintptr_t a = ((uintptr_t)map_base + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1);

        g_mem = (unsigned char *)a;
#ifdef MADV_HUGEPAGE
        /* Not fatal: anon_huge_kib then shows no huge pages were used. */
        if (madvise(g_mem, len, MADV_HUGEPAGE) != 0)
            fprintf(stderr, "memhog: %s: madvise(MADV_HUGEPAGE): %s\n",
                    g_id, strerror(errno));
#else
        fprintf(stderr, "memhog: %s: --thp: MADV_HUGEPAGE not supported\n", g_id);
#endif
    } else {
        g_mem = map_base;
#ifdef MADV_NOHUGEPAGE
        /* Keep memory in base pages so swap works page by page. */
        if (madvise(g_mem, len, MADV_NOHUGEPAGE) != 0)
            fprintf(stderr, "memhog: %s: madvise(MADV_NOHUGEPAGE): %s\n",
                    g_id, strerror(errno));
#endif
    }

    if (install_sigbus_handler() != 0)
        return 1;

    /* --- phase "run": fill, then verification passes --- */
    struct phase run = { .name = "run", .passes = passes };
    uint64_t in0, out0, in1, out1;
    double t0, t1, t2;
    char label[32];

    read_vmstat(&in0, &out0);
    t0 = now_s();
    fill_all(&run);
    /* right after the fill, before swap had a chance to split huge pages */
    run.anon_huge_kib = read_anon_huge_kib();
    if (do_inject)              /* test hook: damage one byte mid-page */
        g_mem[inject * g_page + g_page / 2] ^= 0xff;
    if (do_inject_bus && inject_sigbus((size_t)inject_bus) != 0)
        return 1;
    t1 = now_s();
    for (unsigned p = 1; p <= passes; p++) {
        snprintf(label, sizeof(label), "pass %u", p);
        verify_pass(p, true, order, scratch, seen, &run, label);
    }
    t2 = now_s();
    read_vmstat(&in1, &out1);
    run.fill_s = t1 - t0;
    run.verify_s = t2 - t1;
    run.elapsed_s = t2 - t0;
    run.pswpin_delta = delta(in1, in0);
    run.pswpout_delta = delta(out1, out0);
    /* lost pages stay lost, and each phase visits every page */
    run.pages_sigbus = g_nlost;
    print_result(&run, size_mib);

    int status = run.pages_corrupted ? 2 : run.pages_sigbus ? 3 : 0;

    /* --- phase "recheck": hold memory, then verify once more --- */
    if (hold) {
        struct phase rc = { .name = "recheck", .passes = 1 };
        uint64_t in2, out2;

        if (hold_until(hold) != 0)
            return 1;
        memset(seen, 0, g_npages / 8 + 1);
        rc.anon_huge_kib = read_anon_huge_kib();
        t0 = now_s();
        verify_pass(1, false, NULL, scratch, seen, &rc, "recheck");
        t1 = now_s();
        /* swap deltas cover the hold too, e.g. the swap-in done by swapoff */
        read_vmstat(&in2, &out2);
        rc.verify_s = rc.elapsed_s = t1 - t0;
        rc.pswpin_delta = delta(in2, in1);
        rc.pswpout_delta = delta(out2, out1);
        rc.pages_sigbus = g_nlost;
        print_result(&rc, size_mib);
        if (rc.pages_corrupted)
            status = 2;
        else if (rc.pages_sigbus && status == 0)
            status = 3;
    }

    munmap(map_base, map_len);
    free(g_lost);
    free(order);
    free(seen);
    free(scratch);
    return status;
}
