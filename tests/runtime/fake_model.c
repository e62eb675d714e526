/* A hand-written stand-in for generated model code, to test the runtime without codegen.
 *
 * Inputs:  x float32 [2, 3], k int64 [4]
 * Outputs: y float32 [2, 3] = x * 2 + k[i % 4] (i: flat index), total int64 [] = sum(k)
 * The first stage writes x * 2 into the arena, the second reads it back; both stages use
 * kiln_parallel_for, as generated kernels do. */
#include "kiln_model.h"

static const int64_t x_shape[] = {2, 3};
static const int64_t k_shape[] = {4};
static const int64_t y_shape[] = {2, 3};

static const kiln_tensor_desc inputs[] = {
    {"x", 1, 2, x_shape, 6 * sizeof(float)},
    {"k", 7, 1, k_shape, 4 * sizeof(int64_t)},
};
static const kiln_tensor_desc outputs[] = {
    {"y", 1, 2, y_shape, 6 * sizeof(float)},
    {"total", 7, 0, 0, sizeof(int64_t)},
};

static void doubled(const kiln_exec *e, int64_t lo, int64_t hi) {
    const float *x = e->inputs[0];
    float *tmp = (float *)(e->arena + 64); /* an offset into the arena, as a plan would give */
    for (int64_t i = lo; i < hi; i++) tmp[i] = x[i] * 2.0f;
}

static void add_k(const kiln_exec *e, int64_t lo, int64_t hi) {
    const float *tmp = (const float *)(e->arena + 64);
    const int64_t *k = e->inputs[1];
    float *y = e->outputs[0];
    for (int64_t i = lo; i < hi; i++) y[i] = tmp[i] + (float)k[i % 4];
}

static void run(const kiln_exec *e) {
    kiln_parallel_for(e, doubled, 6);
    kiln_parallel_for(e, add_k, 6);
    const int64_t *k = e->inputs[1];
    int64_t *total = e->outputs[1];
    *total = k[0] + k[1] + k[2] + k[3];
}

KILN_HIDDEN const char KILN_MANIFEST[] = "{}";
KILN_HIDDEN const char *kiln_missing_cpu_features(void) { return NULL; }
KILN_HIDDEN const kiln_model *kiln_active_model(void) { return &KILN_MODEL; }

KILN_HIDDEN const kiln_model KILN_MODEL = {
    .name = "fake",
    .num_inputs = 2,
    .num_outputs = 2,
    .inputs = inputs,
    .outputs = outputs,
    .arena_size = 128,
    .run = run,
};
