/* The thread pool behind kiln_parallel_for (internal to the runtime; see kiln_pool.c). */
#ifndef KILN_POOL_H
#define KILN_POOL_H

#include "kiln_model.h"

/* Start num_threads - 1 workers (num_threads >= 2). Returns 0, or an errno value (ENOMEM,
 * or pthread_create's error) with *failed_worker set to the worker that could not start. */
KILN_HIDDEN int kiln_pool_create(int num_threads, kiln_pool **out, int *failed_worker);

/* Stop and join the workers, free the pool. Not while a kiln_parallel_for is running. */
KILN_HIDDEN void kiln_pool_destroy(kiln_pool *pool);

/* Threads a session gets by default: the CPUs this process may run on, at most `cap`. */
KILN_HIDDEN int kiln_default_threads(int cap);

#endif
