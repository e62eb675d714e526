/* The thread pool behind kiln_parallel_for, through the public API: a model whose run calls
 * kiln_parallel_for for many task counts and checks that each task ran exactly once, also
 * from nested calls; then times a parallel_for over 64 tasks of ~1 us each. Built as one
 * program with the runtime's sources. Usage: pool_test [checked runs [timed parallel_fors]].
 * Exits non-zero on any failed check. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "kiln_abi.h"
#include "kiln_model.h"

#define MAX_TASKS 100003
static const int64_t task_counts[] = {0, 1, 2, 3, 5, 7, 8, 9, 64, 1000, MAX_TASKS};
#define NUM_COUNTS ((int)(sizeof task_counts / sizeof task_counts[0]))

/* input: mode [1] (0: check, n > 0: time n parallel_fors of 64 ~1 us tasks); output: errors */
static const int64_t one[] = {1};
static const kiln_tensor_desc inputs[] = {{"mode", KILN_DTYPE_INT64, 1, one, 8}};
static const kiln_tensor_desc outputs[] = {{"errors", KILN_DTYPE_INT64, 1, one, 8}};

static void count(const kiln_exec *e, int64_t lo, int64_t hi) {
    atomic_int *hits = (atomic_int *)e->arena;
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&hits[i], 1);
}

static void nested(const kiln_exec *e, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i++) kiln_parallel_for(e, count, 16); /* runs serially */
}

/* About 1 us of arithmetic per task, stored so that it is not optimized away. */
static void work(const kiln_exec *e, int64_t lo, int64_t hi) {
    float *sink = (float *)e->arena;
    for (int64_t i = lo; i < hi; i++) {
        float acc = (float)i;
        for (int k = 0; k < 1000; k++) acc = acc * 0.999f + 1.0f;
        sink[i] = acc;
    }
}

static int64_t expect_hits(atomic_int *hits, int64_t n, int expected) {
    int64_t errors = 0;
    for (int64_t i = 0; i < n; i++) errors += atomic_load(&hits[i]) != expected;
    for (int64_t i = 0; i < MAX_TASKS; i++) atomic_store(&hits[i], 0);
    return errors;
}

static void run(const kiln_exec *e) {
    int64_t mode = *(const int64_t *)e->inputs[0];
    int64_t *errors = e->outputs[0];
    atomic_int *hits = (atomic_int *)e->arena;
    *errors = 0;
    if (mode > 0) {
        for (int64_t i = 0; i < mode; i++) kiln_parallel_for(e, work, 64);
        return;
    }
    for (int c = 0; c < NUM_COUNTS; c++) {
        kiln_parallel_for(e, count, task_counts[c]);
        *errors += expect_hits(hits, task_counts[c], 1);
    }
    kiln_parallel_for(e, nested, 8);
    *errors += expect_hits(hits, 16, 8);
}

KILN_HIDDEN const char KILN_MANIFEST[] = "{}";
KILN_HIDDEN const char *kiln_missing_cpu_features(void) { return NULL; }
KILN_HIDDEN const kiln_model *kiln_active_model(void) { return &KILN_MODEL; }

KILN_HIDDEN const kiln_model KILN_MODEL = {
    "pool", 1, 1, inputs, outputs, MAX_TASKS * sizeof(atomic_int) / 64 * 64 + 64, run, 0, NULL,
    NULL, NULL,
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 50;
    int timed = argc > 2 ? atoi(argv[2]) : 1000;
    int thread_counts[] = {1, 2, 3, 4, 8, 16};
    for (int t = 0; t < 6; t++) {
        kiln_options o;
        kiln_options_init(&o);
        o.num_threads = thread_counts[t];
        kiln_session *s = NULL;
        CHECK(kiln_session_create(&o, &s) == KILN_OK);
        if (s == NULL) continue;
        int64_t mode = 0, errors = -1;
        const void *in[] = {&mode};
        void *out[] = {&errors};
        for (int r = 0; r < runs; r++) {
            CHECK(kiln_session_run(s, in, out) == KILN_OK);
            CHECK(errors == 0);
        }
        mode = timed;
        double start = now();
        CHECK(kiln_session_run(s, in, out) == KILN_OK);
        printf("threads %2d: %d checked runs; one parallel_for takes %.2f us\n",
               thread_counts[t], runs, (now() - start) / (double)mode * 1e6);
        CHECK(kiln_session_destroy(s) == KILN_OK);
    }
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures != 0;
}
