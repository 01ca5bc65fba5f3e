// The MPI calls the data-parallel trainer makes, as plain C functions: MPI's handles
// (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE) are macros over library globals that Swift
// cannot import, and a request's type differs between implementations (a pointer in Open MPI, an
// int in MPICH), so requests cross as malloc'd opaque pointers. Every function returns MPI's error
// code (MPI_SUCCESS = 0); errors return instead of aborting (MPI_ERRORS_RETURN), so that the caller
// can say what failed before it stops the job.
#ifndef BERT_MPI_SHIM_H
#define BERT_MPI_SHIM_H
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

// Initialises MPI (threads: only the calling thread makes MPI calls) and reports the rank, the
// world's size and the ranks on this host.
static inline int bert_mpi_init(int *rank, int *size, int *local_size) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    // The kernels' worker threads never call MPI, but they exist: FUNNELED is needed.
    if (provided < MPI_THREAD_FUNNELED) return MPI_ERR_OTHER;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return rc;
    MPI_Comm local;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &local)) != MPI_SUCCESS)
        return rc;
    rc = MPI_Comm_size(local, local_size);
    MPI_Comm_free(&local);
    return rc;
}

static inline int bert_mpi_finalize(void) { return MPI_Finalize(); }

static inline void bert_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static inline int bert_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

// In-place sums over all ranks (count fits an int: the caller splits larger buffers).
static inline int bert_mpi_allreduce_floats(float *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static inline int bert_mpi_allreduce_doubles(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

// Starts an in-place sum; *request is freed by bert_mpi_wait.
static inline int bert_mpi_start_allreduce_floats(float *values, int count, void **request) {
    MPI_Request *r = (MPI_Request *)malloc(sizeof(MPI_Request));
    if (r == NULL) return MPI_ERR_NO_MEM;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r);
    if (rc != MPI_SUCCESS) { free(r); return rc; }
    *request = r;
    return MPI_SUCCESS;
}
// Lets started sums progress (MPI moves non-blocking collectives on when it is called).
static inline int bert_mpi_test(void *request, int *done) {
    return MPI_Test((MPI_Request *)request, done, MPI_STATUS_IGNORE);
}
static inline int bert_mpi_wait(void *request) {
    int rc = MPI_Wait((MPI_Request *)request, MPI_STATUS_IGNORE);
    free(request);
    return rc;
}

// Rank root's bytes to every rank (count fits an int).
static inline int bert_mpi_broadcast(void *bytes, int count, int root) {
    return MPI_Bcast(bytes, count, MPI_BYTE, root, MPI_COMM_WORLD);
}

// MPI's description of an error code.
static inline void bert_mpi_error_string(int code, char *out, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    if (capacity <= 0) return;
    if (length >= capacity) length = capacity - 1;
    memcpy(out, text, (size_t)length);
    out[length] = 0;
}
#endif
