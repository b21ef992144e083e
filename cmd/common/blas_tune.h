/* blas_tune.h — runtime settings that must be in the environment before the libraries load.
 *  - OpenBLAS picks its kernels when it loads (before main); on AVX-512 CPUs it does not recognize
 *    (e.g. AMD Zen 4) it falls back to Haswell (AVX2) kernels: half the GEMM speed. We want
 *    OPENBLAS_CORETYPE=SkylakeX there.
 *  - libgomp reads OMP_WAIT_POLICY when it loads. Its default spins idle threads at every barrier;
 *    on a machine shared with other jobs a spinning thread steals the core a working thread needs,
 *    and a forward pass (hundreds of barriers) ran 5x slower here. PASSIVE costs a futex wake per
 *    barrier (< 1% of a forward on an idle machine).
 * tool_blas_reexec() re-executes the tool once with those set, unless the user set them (or
 * GOMP_SPINCOUNT) or LOP_NO_REEXEC. Call it first thing in main() of compute tools. */
#ifndef LOP_BLAS_TUNE_H
#define LOP_BLAS_TUNE_H
void tool_blas_reexec(char **argv);
#endif
