/* matmul.c - double precision 128x128 matrix multiply, checked against an identity and a
 * transposed product, plus sqrt/exp/sin from libm; prints checksums with %.6f.
 * Exit status: 0, or the number of the first failed check. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(code, cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "matmul: check %d failed: %s\n", (code), #cond);           \
            exit(code);                                                                \
        }                                                                              \
    } while (0)

#define N 128

static double A[N][N], B[N][N], C[N][N], D[N][N], I[N][N];

static void mul(double (*x)[N], double (*y)[N], double (*z)[N])
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            z[i][j] = 0.0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < N; k++) {
            double a = x[i][k];
            for (int j = 0; j < N; j++)
                z[i][j] += a * y[k][j];
        }
}

int main(void)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            A[i][j] = sin((double)(i * N + j) * 0.01) + 0.5;
            B[i][j] = sqrt((double)(i + 2 * j + 1)) * 0.1;
            I[i][j] = i == j ? 1.0 : 0.0;
        }

    mul(A, I, D); /* A * I == A exactly */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            CHECK(1, D[i][j] == A[i][j]);

    mul(A, B, C);
    double trace = 0.0, sum = 0.0, maxabs = 0.0;
    for (int i = 0; i < N; i++) {
        trace += C[i][i];
        for (int j = 0; j < N; j++) {
            sum += C[i][j];
            if (fabs(C[i][j]) > maxabs)
                maxabs = fabs(C[i][j]);
        }
    }
    /* (A*B)^T == B^T * A^T, up to rounding. */
    static double At[N][N], Bt[N][N], Ct[N][N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            At[i][j] = A[j][i];
            Bt[i][j] = B[j][i];
        }
    mul(Bt, At, Ct);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            CHECK(2, fabs(Ct[j][i] - C[i][j]) <= 1e-9 * (1.0 + fabs(C[i][j])));
    /* Row sums computed independently. */
    for (int i = 0; i < N; i += 17) {
        double rs = 0.0;
        for (int k = 0; k < N; k++) {
            double bs = 0.0;
            for (int j = 0; j < N; j++)
                bs += B[k][j];
            rs += A[i][k] * bs;
        }
        double cs = 0.0;
        for (int j = 0; j < N; j++)
            cs += C[i][j];
        CHECK(3, fabs(rs - cs) <= 1e-9 * fabs(cs));
    }
    printf("C = A*B: trace %.6f sum %.6f max %.6f\n", trace, sum, maxabs);

    /* libm */
    CHECK(10, sqrt(2.0) * sqrt(2.0) - 2.0 < 1e-15);
    CHECK(11, fabs(exp(1.0) - 2.718281828459045) < 1e-15);
    CHECK(12, fabs(sin(M_PI / 6) - 0.5) < 1e-15);
    CHECK(13, fabs(exp(log(10.0)) - 10.0) < 1e-13);
    CHECK(14, sqrt(-1.0) != sqrt(-1.0)); /* NaN */
    CHECK(15, isinf(exp(1000.0)) && exp(-1000.0) == 0.0);
    double acc = 0.0;
    for (int i = 1; i <= 1000; i++)
        acc += sqrt((double)i) * exp(-(double)i / 500.0) * sin((double)i);
    printf("libm: sqrt(2) %.6f exp(1) %.6f sin(1) %.6f series %.6f\n", sqrt(2.0), exp(1.0),
           sin(1.0), acc);
    return 0;
}
