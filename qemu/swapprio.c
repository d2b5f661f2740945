/*
 * swapprio.c - swapon with a priority, for the guest's /init.
 *
 * busybox-static's swapon has no -p, and the scenarios with two swap
 * devices need the preferred one to fill first.
 *
 * Usage: swapprio DEVICE PRIORITY     (PRIORITY 0..32767)
 * Exit status: 0 on success, 1 on a usage error or a failed swapon(2).
 *
 * Build: gcc -static -O2 -Wall -Wextra -Werror -o swapprio qemu/swapprio.c
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/swap.h>

int main(int argc, char **argv)
{
    char *end;
    long prio;

    if (argc != 3) {
        fprintf(stderr, "usage: swapprio DEVICE PRIORITY\n");
        return 1;
    }
    errno = 0;
    prio = strtol(argv[2], &end, 10);
    if (errno || *end || end == argv[2] || prio < 0 || prio > SWAP_FLAG_PRIO_MASK) {
        fprintf(stderr, "swapprio: priority '%s' is not a number from 0 to %d\n",
                argv[2], SWAP_FLAG_PRIO_MASK);
        return 1;
    }
    if (swapon(argv[1], SWAP_FLAG_PREFER |
               (((int)prio << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK)) != 0) {
        fprintf(stderr, "swapprio: swapon %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return 0;
}
