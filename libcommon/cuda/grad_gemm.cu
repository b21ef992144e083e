/* grad_gemm.cu — the linear layers' backward through cuBLAS (grad_linear.c's tr_matmul_backward,
 * train_model.c's LoRA branch). Row-major [rows, cols] matrices are column-major [cols, rows] to
 * cuBLAS, so din^T = W^T dout^T and dW^T = inp^T dout are plain column-major products.
 * bf16: both operands bf16 (weights as stored, activations rounded once), float32 accumulation
 * into the float32 gradient (beta = 1). f32: cublasSgemm with the handle's default math (no TF32).
 * LoRA's products: float32, or TF32 in a bf16 run. (Splitting their long reductions by hand into
 * strided batches was measured on the 4B card: +0.9%, noise; cuBLAS already spreads them.) */
#include "grad.cuh"
#include "kernels.cuh"

#include <stdlib.h>
#include <string.h>

/* LoRA's skinny products (xa, dxa, dA, dB) on lora_skinny.cu's kernels with LOP_CUDA_LORA=own
 * (ranks 8 and 16); by default cuBLAS's, which measured faster on the 4B card (LoRA's ops 30 ms
 * a step against the kernels' 44 ms, H200) */
static int lora_own(int r) {
    const char *e = getenv("LOP_CUDA_LORA");
    return kg_lora_skinny_supports(r) && e && !strcmp(e, "own");
}

#define BLAS_OK(x) do { cublasStatus_t st_ = (x); if (st_ != CUBLAS_STATUS_SUCCESS) { rc = cudaErrorUnknown; goto out; } } while (0)
#define CUDA_OK(x) do { rc = (x); if (rc != cudaSuccess) goto out; } while (0)

cudaError_t kg_matmul_backward(cublasHandle_t h, float *din, float *dw, float *dbias,
                               const float *dout, const float *inp, const void *w, int wdt,
                               int N, int IC, int OC, int bf16, const __nv_bfloat16 *dout_bf16,
                               const __nv_bfloat16 *inp_bf16, int din_set, cudaStream_t s) {
    cudaError_t rc = cudaSuccess;
    const float one = 1.0f, zero = 0.0f, *dbeta = din_set ? &zero : &one;
    __nv_bfloat16 *db = NULL, *ib = NULL, *wb = NULL;
    float *wf = NULL;
    if (N <= 0) return cudaSuccess;
    cublasSetStream(h, s);
    if (bf16) {
        if ((din || dw) && !dout_bf16) {
            CUDA_OK(cudaMallocAsync((void **)&db, sizeof(__nv_bfloat16) * (size_t)N * OC, s));
            CUDA_OK(k_to_bf16(db, dout, KDT_F32, (size_t)N * OC, s));
            dout_bf16 = db;
        }
        if (din) {
            const void *W = w;
            if (wdt != KDT_BF16) { /* a float32 / f16 weight: rounded for this product */
                CUDA_OK(cudaMallocAsync((void **)&wb, sizeof(__nv_bfloat16) * (size_t)OC * IC, s));
                CUDA_OK(k_to_bf16(wb, w, wdt, (size_t)OC * IC, s));
                W = wb;
            }
            BLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, W, CUDA_R_16BF, IC,
                                 dout_bf16, CUDA_R_16BF, OC, dbeta, din, CUDA_R_32F, IC,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
        if (dw) {
            if (!inp_bf16) {
                CUDA_OK(cudaMallocAsync((void **)&ib, sizeof(__nv_bfloat16) * (size_t)N * IC, s));
                CUDA_OK(k_to_bf16(ib, inp, KDT_F32, (size_t)N * IC, s));
                inp_bf16 = ib;
            }
            BLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &one, inp_bf16, CUDA_R_16BF, IC,
                                 dout_bf16, CUDA_R_16BF, OC, &one, dw, CUDA_R_32F, IC,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
    } else {
        if (din) {
            const float *W = (const float *)w;
            if (wdt != KDT_F32) { /* a bf16 / f16 weight in a float32 product: converted exactly */
                CUDA_OK(cudaMallocAsync((void **)&wf, sizeof(float) * (size_t)OC * IC, s));
                CUDA_OK(k_to_f32(wf, w, wdt, (size_t)OC * IC, s));
                W = wf;
            }
            BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &one, W, IC, dout, OC, dbeta,
                                din, IC));
        }
        if (dw)
            BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &one, inp, IC, dout, OC, &one,
                                dw, IC));
    }
    if (dbias) CUDA_OK(kg_bias_backward(dbias, dout, N, OC, s));
out:
    if (db) cudaFreeAsync(db, s);
    if (ib) cudaFreeAsync(ib, s);
    if (wb) cudaFreeAsync(wb, s);
    if (wf) cudaFreeAsync(wf, s);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    return rc;
}

cudaError_t kg_lora_forward(cublasHandle_t h, float *out, float *xa, float *tmp, const float *x,
                            const float *A, const float *B, int N, int IC, int OC, int r,
                            float scale, float dropout, uint64_t seed, uint64_t key, int tf32,
                            cudaStream_t s) {
    cudaError_t rc = cudaSuccess;
    const float one = 1.0f, zero = 0.0f;
    const float *xd = x;
    if (N <= 0) return cudaSuccess;
    cublasSetStream(h, s);
    if (tf32) cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    if (dropout > 0) {
        CUDA_OK(kg_dropout(tmp, x, (size_t)N * IC, seed, key, dropout, 0, s));
        xd = tmp;
    }
    /* xa[N, r] = xd[N, IC] A[r, IC]^T */
    if (lora_own(r) && (rc = kg_lora_rows(xa, xd, NULL, IC, A, IC, 1, N, IC, r, 1.0f, s)) != cudaErrorNotSupported) {
        if (rc != cudaSuccess) goto out;
    } else {
        rc = cudaSuccess;
        BLAS_OK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, r, N, IC, &one, A, IC, xd, IC, &zero, xa, r));
    }
    /* out[N, OC] += scale xa B[OC, r]^T */
    BLAS_OK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, r, &scale, B, r, xa, r, &one, out, OC));
out:
    if (tf32) cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    return rc;
}

cudaError_t kg_lora_backward(cublasHandle_t h, float *din, float *dA, float *dB, float *dxa,
                             float *tmp, const float *dout, const float *x, const float *xa,
                             const float *A, const float *B, int N, int IC, int OC, int r,
                             float scale, float dropout, uint64_t seed, uint64_t key, int tf32,
                             const __nv_bfloat16 *dout_bf16, const __nv_bfloat16 *B_bf16,
                             int din_set, cudaStream_t s) {
    cudaError_t rc = cudaSuccess;
    const float one = 1.0f, zero = 0.0f;
    __nv_bfloat16 *xab = NULL;
    if (N <= 0) return cudaSuccess;
    cublasSetStream(h, s);
    if (tf32) cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    int own = lora_own(r);
    /* dxa[N, r] = s dout[N, OC] B[OC, r] (B(k, o) at B[o * r + k]);  dB[OC, r] += s dout^T xa:
     * the skinny kernels read dout once each (its bf16 copy when there is one) */
    if (own && (rc = kg_lora_rows(dxa, dout, dout_bf16, OC, B, 1, r, N, OC, r, scale, s)) != cudaErrorNotSupported) {
        if (rc != cudaSuccess) goto out;
        if (dB && (rc = kg_lora_cols(dB, r, 1, dout, dout_bf16, OC, xa, N, OC, r, scale, s)) != cudaSuccess)
            goto out;
    } else if (dout_bf16 && B_bf16) {
        rc = cudaSuccess;
        /* dxa[N, r] = s dout[N, OC] B[OC, r];  dB[OC, r] += s dout^T xa (xa rounded: [N, r]) */
        BLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, r, N, OC, &scale, B_bf16, CUDA_R_16BF, r, dout_bf16,
                             CUDA_R_16BF, OC, &zero, dxa, CUDA_R_32F, r, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (dB) {
            CUDA_OK(cudaMallocAsync((void **)&xab, sizeof(__nv_bfloat16) * (size_t)N * r, s));
            CUDA_OK(k_to_bf16(xab, xa, KDT_F32, (size_t)N * r, s));
            BLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, r, OC, N, &scale, xab, CUDA_R_16BF, r, dout_bf16,
                                 CUDA_R_16BF, OC, &one, dB, CUDA_R_32F, r, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
        }
    } else {
        rc = cudaSuccess;
        /* dxa[N, r] = s dout[N, OC] B[OC, r] */
        BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, r, N, OC, &scale, B, r, dout, OC, &zero, dxa, r));
        /* dB[OC, r] += s dout^T xa */
        if (dB) BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, r, OC, N, &scale, xa, r, dout, OC, &one, dB, r));
    }
    /* dA[r, IC] += dxa^T drop(x) */
    if (dA) {
        const float *xd = x;
        if (dropout > 0) {
            CUDA_OK(kg_dropout(tmp, x, (size_t)N * IC, seed, key, dropout, 0, s));
            xd = tmp;
        }
        if (own && (rc = kg_lora_cols(dA, 1, IC, xd, NULL, IC, dxa, N, IC, r, 1.0f, s)) != cudaErrorNotSupported) {
            if (rc != cudaSuccess) goto out;
        } else {
            rc = cudaSuccess;
            BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, IC, r, N, &one, xd, IC, dxa, r, &one, dA, IC));
        }
    }
    if (!din) goto out;
    if (dropout <= 0) { /* din[N, IC] += dxa A (din_set: =) */
        BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, r, &one, A, IC, dxa, r, din_set ? &zero : &one,
                            din, IC));
    } else {            /* through the same mask */
        if (din_set) CUDA_OK(cudaMemsetAsync(din, 0, sizeof(float) * (size_t)N * IC, s));
        BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, r, &one, A, IC, dxa, r, &zero, tmp, IC));
        CUDA_OK(kg_dropout(din, tmp, (size_t)N * IC, seed, key, dropout, 1, s));
    }
out:
    if (xab) cudaFreeAsync(xab, s);
    if (tf32) cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    return rc;
}

cudaError_t kg_lora_first(cublasHandle_t h, float *out, float *xa, float *tmp, const float *x,
                          const __nv_bfloat16 *xb, const __nv_bfloat16 *Ab, const float *A,
                          const float *B, int N, int IC, int OC, int r, float scale, float dropout,
                          uint64_t seed, uint64_t key, cudaStream_t s) {
    cudaError_t rc = cudaSuccess;
    const float one = 1.0f, zero = 0.0f;
    if (N <= 0) return cudaSuccess;
    cublasSetStream(h, s);
    cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
    if (dropout <= 0 && xb && Ab) { /* xa[N, r] = x A^T from the bf16 copies the projection reads too */
        BLAS_OK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, r, N, IC, &one, Ab, CUDA_R_16BF, IC, xb, CUDA_R_16BF,
                             IC, &zero, xa, CUDA_R_32F, r, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        const float *xd = x;
        if (dropout > 0) {
            CUDA_OK(kg_dropout(tmp, x, (size_t)N * IC, seed, key, dropout, 0, s));
            xd = tmp;
        }
        BLAS_OK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, r, N, IC, &one, A, IC, xd, IC, &zero, xa, r));
    }
    /* out[N, OC] = scale xa B^T: stored, the projection's GEMM adds over it */
    BLAS_OK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, r, &scale, B, r, xa, r, &zero, out, OC));
out:
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    if (rc == cudaSuccess) rc = cudaGetLastError();
    return rc;
}
