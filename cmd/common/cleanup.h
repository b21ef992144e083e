/* cleanup.h — temporaries removed on every exit, and SIGINT/SIGTERM/SIGHUP (CLI.md).
 *
 * Every temporary file or folder a tool creates is registered here while it exists: libcommon's
 * (fs_temp_open, st_writer folders, checkpoints, caches) through fs_set_temp_hook(), installed by
 * tool_init(); a tool's own with tmp_add()/tmp_del(). They are removed by an atexit handler (tool_die(),
 * exit()) and by the signal handler, which uses only async-signal-safe calls (unlink, openat,
 * getdents64, unlinkat) and then re-raises the signal: the shell sees 130 (SIGINT) / 143 (SIGTERM).
 *
 * Training tools call cleanup_defer_signals(): the first signal only sets a flag that the step
 * loop polls with cleanup_stop_signal() (finish the step, save a checkpoint, say how to resume,
 * exit 128+signal); a second signal stops at once, removing temporaries. */
#ifndef LOP_CLEANUP_H
#define LOP_CLEANUP_H

void cleanup_install(void);             /* tool_init calls it */
void tmp_add(const char *path);         /* a temporary file or folder now exists at path */
void tmp_del(const char *path);         /* it was renamed into place or removed */
void cleanup_defer_signals(void);       /* training tools: first signal = "stop after this step" */
int cleanup_stop_signal(void);          /* the deferred signal (SIGINT, SIGTERM...) or 0 */
/* A line (with its newline) written to stderr when a signal ends the process (async-signal-safe:
 * kept in a static buffer); NULL: none. Rank 0 of an mpirun job says why it was stopped. */
void cleanup_signal_note(const char *line);
/* Remove every registered temporary, then exit 128+sig with the default action of sig
 * (re-raised, so a calling shell sees the signal). */
_Noreturn void cleanup_exit_signal(int sig);
#endif
