/* Sessions of one compiled model (header model.h, prefix kiln_) under stress:
 *   sessions parallel N R  - N threads, each with its own session, run R times; every output
 *                            must equal a single-threaded reference run, byte for byte
 *   sessions shared R      - two threads run one session: each call is OK or refused as
 *                            "already running", never a crash or a wrong result
 *   sessions destroyed     - run and destroy after destroy are refused with a message
 *   sessions once          - create, run three times, destroy (for valgrind)
 * Prints "ok" and exits 0 when every check passed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int failures;
#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s (%s)\n", __FILE__, __LINE__, #cond, \
                    kiln_last_error());                                                 \
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);                         \
        }                                                                               \
    } while (0)

typedef struct buffers {
    void *in[KILN_NUM_INPUTS > 0 ? KILN_NUM_INPUTS : 1];
    void *out[KILN_NUM_OUTPUTS > 0 ? KILN_NUM_OUTPUTS : 1];
} buffers;

static size_t nbytes(int input, int i) {
    kiln_tensor_info info;
    kiln_status st = input ? kiln_input_info(i, &info) : kiln_output_info(i, &info);
    return st == KILN_OK ? info.nbytes : 0;
}

/* Inputs with a fixed pattern: small floats for float32, small integers otherwise. */
static void alloc_buffers(buffers *b) {
    for (int i = 0; i < kiln_num_inputs(); i++) {
        kiln_tensor_info info;
        kiln_input_info(i, &info);
        b->in[i] = aligned_alloc(64, info.nbytes + 64);
        unsigned char *bytes = b->in[i];
        if (info.dtype == KILN_DTYPE_FLOAT32) {
            float *f = b->in[i];
            for (size_t k = 0; k < info.nbytes / 4; k++) f[k] = (float)((k * 7 + i) % 23) / 8 - 1;
        } else {
            for (size_t k = 0; k < info.nbytes; k++) bytes[k] = (unsigned char)(k % 2);
        }
    }
    for (int i = 0; i < kiln_num_outputs(); i++) {
        b->out[i] = aligned_alloc(64, nbytes(0, i) + 64);
        memset(b->out[i], 0xAB, nbytes(0, i));
    }
}

static void free_buffers(buffers *b) {
    for (int i = 0; i < kiln_num_inputs(); i++) free(b->in[i]);
    for (int i = 0; i < kiln_num_outputs(); i++) free(b->out[i]);
}

static int same_outputs(const buffers *a, const buffers *b) {
    for (int i = 0; i < kiln_num_outputs(); i++)
        if (memcmp(a->out[i], b->out[i], nbytes(0, i)) != 0) return 0;
    return 1;
}

static buffers reference;
static int reps;

static kiln_session *create(int threads) {
    kiln_options o;
    kiln_options_init(&o);
    o.num_threads = threads;
    kiln_session *s = NULL;
    CHECK(kiln_session_create(&o, &s) == KILN_OK && s != NULL);
    return s;
}

static void *own_session(void *arg) {
    (void)arg;
    buffers b;
    alloc_buffers(&b);
    kiln_session *s = create(1);
    for (int r = 0; r < reps && s != NULL; r++) {
        CHECK(kiln_session_run(s, (const void *const *)b.in, b.out) == KILN_OK);
        CHECK(same_outputs(&b, &reference));
    }
    CHECK(kiln_session_destroy(s) == KILN_OK);
    free_buffers(&b);
    return NULL;
}

static kiln_session *shared;
static int refused;

static void *shared_session(void *arg) {
    (void)arg;
    buffers b;
    alloc_buffers(&b);
    for (int r = 0; r < reps; r++) {
        kiln_status st = kiln_session_run(shared, (const void *const *)b.in, b.out);
        if (st == KILN_OK) {
            CHECK(same_outputs(&b, &reference));
        } else {
            CHECK(st == KILN_INVALID_ARGUMENT && strstr(kiln_last_error(), "already running"));
            __atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
        }
    }
    free_buffers(&b);
    return NULL;
}

static void run_threads(int n, void *(*fn)(void *)) {
    pthread_t tids[64];
    for (int i = 0; i < n; i++) CHECK(pthread_create(&tids[i], NULL, fn, NULL) == 0);
    for (int i = 0; i < n; i++) pthread_join(tids[i], NULL);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "once";
    alloc_buffers(&reference);
    kiln_session *s = create(1);
    if (s == NULL) return 1;
    for (int r = 0; r < 3; r++)
        CHECK(kiln_session_run(s, (const void *const *)reference.in, reference.out) == KILN_OK);
    if (strcmp(mode, "parallel") == 0 && argc == 4) {
        int n = atoi(argv[2]);
        reps = atoi(argv[3]);
        run_threads(n < 64 ? n : 64, own_session);
    } else if (strcmp(mode, "shared") == 0 && argc == 3) {
        reps = atoi(argv[2]);
        shared = create(2);
        run_threads(2, shared_session);
        CHECK(kiln_session_destroy(shared) == KILN_OK);
        printf("refused %d of %d concurrent runs\n", refused, 2 * reps);
    } else if (strcmp(mode, "destroyed") == 0) {
        kiln_session *gone = create(2);
        CHECK(kiln_session_destroy(gone) == KILN_OK);
        CHECK(kiln_session_run(gone, (const void *const *)reference.in, reference.out) ==
                  KILN_INVALID_ARGUMENT && strstr(kiln_last_error(), "not a live session"));
        CHECK(kiln_session_destroy(gone) == KILN_INVALID_ARGUMENT &&
              strstr(kiln_last_error(), "destroyed"));
    } else if (strcmp(mode, "once") != 0) {
        fprintf(stderr, "usage: sessions parallel N R | shared R | destroyed | once\n");
        return 2;
    }
    CHECK(kiln_session_destroy(s) == KILN_OK);
    free_buffers(&reference);
    if (failures == 0) printf("ok\n");
    return failures != 0;
}
