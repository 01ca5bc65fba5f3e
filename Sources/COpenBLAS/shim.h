// CBLAS from Debian's libopenblas-dev (found through pkg-config "openblas").
#include <cblas.h>
// OpenBLAS extensions used to keep BLAS single-threaded inside our own worker threads.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
