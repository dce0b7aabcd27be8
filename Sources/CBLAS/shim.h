// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<cblas.h>)
#include <cblas.h>
#else
#error "cblas.h not found: install the Debian package libopenblas-dev (apt-get install libopenblas-dev)"
#endif
// OpenBLAS controls its own worker threads; we set them to match --threads.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// LAPACK's Cholesky factorisation and solve (Fortran symbols exported by OpenBLAS), for the BSS Eval projections.
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b,
             const int *ldb, int *info);
