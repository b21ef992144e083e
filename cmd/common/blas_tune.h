/* blas_tune.h — pick OpenBLAS's fastest kernels on this CPU. OpenBLAS chooses its kernels when the
 * library loads (before main), and on AVX-512 CPUs it does not recognize (e.g. AMD Zen 4) it falls
 * back to Haswell (AVX2) kernels: half the GEMM speed. tool_blas_reexec() re-executes the tool
 * once with OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 and the user set neither
 * OPENBLAS_CORETYPE nor LOP_NO_REEXEC. Call it first thing in main() of compute tools. */
#ifndef LOP_BLAS_TUNE_H
#define LOP_BLAS_TUNE_H
void tool_blas_reexec(char **argv);
#endif
