/* The contract between generated model code and the Kiln runtime (internal, not public).
 *
 * Generated code defines one `kiln_model` (hidden visibility, named KILN_MODEL) describing
 * the model's tensors and its run function; the runtime (kiln_runtime.c, compiled into the
 * same artifact) implements the public C API of kiln_abi.h on top of it. */
#ifndef KILN_MODEL_H
#define KILN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define KILN_HIDDEN __attribute__((visibility("hidden")))

typedef struct kiln_pool kiln_pool;

/* One input or output tensor of the model. dtype uses ONNX's element type codes. */
typedef struct kiln_tensor_desc {
    const char *name;
    int32_t dtype;
    int32_t rank;
    const int64_t *shape;
    size_t nbytes;
} kiln_tensor_desc;

/* Whether an output has a data-dependent size. bounded != 0: dim `axis` of its shape is an
 * upper bound and the run writes the actual extent as an int64 at arena + count_offset. */
typedef struct kiln_output_bound {
    int32_t bounded;
    int32_t axis;
    size_t count_offset;
} kiln_output_bound;

/* What a kernel needs at run time: the arena and the caller's buffers. */
typedef struct kiln_exec {
    unsigned char *arena;
    const void *const *inputs;
    void *const *outputs;
    kiln_pool *pool;
    double *profile; /* non-NULL while profiling: seconds per fused group, accumulated */
} kiln_exec;

/* A kernel body over tasks [lo, hi) of its parallel loop. */
typedef void (*kiln_task_fn)(const kiln_exec *e, int64_t lo, int64_t hi);

/* Run fn over tasks [0, n), split into fixed contiguous chunks that the session's threads
 * claim as they go (tasks must be independent); returns when all are done. With one thread
 * (or n == 1) it calls fn(e, 0, n) on the calling thread. */
KILN_HIDDEN void kiln_parallel_for(const kiln_exec *e, kiln_task_fn fn, int64_t n);

typedef struct kiln_model {
    const char *name;
    int32_t num_inputs;
    int32_t num_outputs;
    const kiln_tensor_desc *inputs;
    const kiln_tensor_desc *outputs;
    size_t arena_size;   /* bytes of activation memory, 64-byte aligned */
    void (*run)(const kiln_exec *e);
    int32_t num_groups;             /* fused groups (kernels) run by `run`, for profiling */
    const char *const *group_names; /* num_groups names, in run order */
    const kiln_output_bound *bounds; /* num_outputs entries, or NULL: every output is static */
    void (*init)(const kiln_exec *e); /* fills the arena's prepared region once, or NULL */
} kiln_model;

/* Monotonic seconds, for profiling. */
KILN_HIDDEN double kiln_seconds(void);

/* Run one kernel launch `call`, group `index` of the model; while profiling, add its time. */
#define KILN_LAUNCH(index, call)                                    \
    do {                                                            \
        if (e->profile == NULL) {                                   \
            call;                                                   \
        } else {                                                    \
            double kiln_t0_ = kiln_seconds();                       \
            call;                                                   \
            e->profile[index] += kiln_seconds() - kiln_t0_;         \
        }                                                           \
    } while (0)

extern KILN_HIDDEN const kiln_model KILN_MODEL;

/* The generated cpu_check.c, built for the target's baseline CPU like the runtime (so that
 * it runs on any CPU of the architecture), defines both. An artifact may carry the model
 * built for several CPU levels (`--cpu x86-64-v3,x86-64-v4`): kiln_active_model() is the
 * most capable one this CPU runs (the only one, usually); kiln_missing_cpu_features() names
 * the instruction sets the CPU lacks when none fits ("avx2, fma"), else NULL. */
KILN_HIDDEN const kiln_model *kiln_active_model(void);
KILN_HIDDEN const char *kiln_missing_cpu_features(void);

/* The manifest (JSON), defined by the generated manifest.c in section .kiln_manifest. */
extern KILN_HIDDEN const char KILN_MANIFEST[];

#endif
