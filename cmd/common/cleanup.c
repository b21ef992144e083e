/* cleanup.c — the registry of temporaries and the signal handlers (see cleanup.h).
 *
 * The registry is a fixed table (no malloc: the signal handler reads it): a slot's path is written
 * first, then its `used` flag, so a handler never sees half a path. Removal in the handler uses
 * only system calls (unlink, openat, getdents64, unlinkat): readdir/malloc are not
 * async-signal-safe. */
#include "cleanup.h"
#include "fsutil.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TMP_SLOTS 64

static struct slot {
    volatile sig_atomic_t used;
    char path[PATH_MAX];
} g_slots[TMP_SLOTS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t g_defer, g_stop, g_critical, g_pending;

void tmp_add(const char *path) {
    if (!path || strlen(path) >= PATH_MAX) return;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < TMP_SLOTS; i++)
        if (!g_slots[i].used) {
            memcpy(g_slots[i].path, path, strlen(path) + 1);
            __atomic_store_n(&g_slots[i].used, 1, __ATOMIC_SEQ_CST);
            break;
        }
    pthread_mutex_unlock(&g_mu);
}

void tmp_del(const char *path) {
    if (!path) return;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < TMP_SLOTS; i++)
        if (g_slots[i].used && !strcmp(g_slots[i].path, path)) {
            __atomic_store_n(&g_slots[i].used, 0, __ATOMIC_SEQ_CST);
            break;
        }
    pthread_mutex_unlock(&g_mu);
}


static void temp_hook(const char *path, int created) {
    if (created == FS_TEMP_ENTER) { g_critical = 1; return; }
    if (created == FS_TEMP_LEAVE) {
        g_critical = 0;
        if (g_pending) {                                  /* it arrived during the section */
            int sig = g_pending;
            g_pending = 0;
            if (g_defer && !g_stop) g_stop = sig;         /* training: stop after this step */
            else cleanup_exit_signal(sig);
        }
        return;
    }
    if (created) tmp_add(path);
    else tmp_del(path);
}

/* rm -r with system calls only; depth-limited (lop's temporaries are one or two levels deep) */
struct lx_dirent64 { unsigned long long d_ino; long long d_off; unsigned short d_reclen;
                     unsigned char d_type; char d_name[]; };

static void rm_at(int dirfd, const char *name, int depth) {
    if (unlinkat(dirfd, name, 0) == 0) return;
    if (depth > 8) return;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    for (int pass = 0; pass < 4; pass++) {   /* removing entries while reading: read again */
        lseek(fd, 0, SEEK_SET);
        int seen = 0;
        long n;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
            for (long off = 0; off < n;) {
                struct lx_dirent64 *d = (struct lx_dirent64 *)(buf + off);
                off += d->d_reclen;
                if (d->d_name[0] == '.' && (!d->d_name[1] || (d->d_name[1] == '.' && !d->d_name[2])))
                    continue;
                seen++;
                rm_at(fd, d->d_name, depth + 1);
            }
        if (!seen) break;
    }
    close(fd);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void remove_all(void) {
    for (int i = 0; i < TMP_SLOTS; i++)
        if (__atomic_load_n(&g_slots[i].used, __ATOMIC_SEQ_CST)) {
            rm_at(AT_FDCWD, g_slots[i].path, 0);
            g_slots[i].used = 0;
        }
}

static char g_note[512];
static volatile sig_atomic_t g_note_len;

void cleanup_signal_note(const char *line) {
    size_t n = line ? strlen(line) : 0;
    if (n >= sizeof g_note) n = sizeof g_note - 1;
    g_note_len = 0;
    if (n) memcpy(g_note, line, n);
    g_note_len = (sig_atomic_t)n;
}

_Noreturn void cleanup_exit_signal(int sig) {
    if (g_note_len) { ssize_t w = write(2, g_note, (size_t)g_note_len); (void)w; }
    remove_all();
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig);
}

static void on_signal(int sig) {
    if (g_critical) { g_pending = sig; return; }
    if (g_defer && !g_stop) { g_stop = sig; return; }
    cleanup_exit_signal(sig);
}

static void on_exit_remove(void) { remove_all(); }

void cleanup_install(void) {
    static int done;
    if (done) return;
    done = 1;
    fs_set_temp_hook(temp_hook);
    atexit(on_exit_remove);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction old;
        /* a signal ignored by the parent (nohup, `cmd &` in a script) stays ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

void cleanup_defer_signals(void) { g_defer = 1; }
int cleanup_stop_signal(void) { return g_stop; }
