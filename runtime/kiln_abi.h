/* The public C ABI of a Kiln artifact, version 1: the types and functions every compiled model
 * exports. This file is the single source of both: kiln_runtime.c implements the prototypes
 * below, and runtime/header.py copies the two marked blocks into each model's public header
 * (types verbatim, prototypes with the symbol prefix substituted for KILN_API(...)).
 *
 * Symbols carry a prefix chosen at compile time (-DKILN_PREFIX=name_, default kiln_), so two
 * models link into one application; the types below are shared by all models of one ABI
 * version, hence their own include guard. */
#ifndef KILN_ABI_H
#define KILN_ABI_H

#include <stddef.h>
#include <stdint.h>

/* @types-begin */
#ifndef KILN_ABI_V1_TYPES
#define KILN_ABI_V1_TYPES

/* The ABI version this header describes; abi_version() says which one the library implements. */
#define KILN_ABI_VERSION 1u

/* What every call returns. A failed call leaves a message for last_error() (each function
 * name carries the model's symbol prefix: kiln_last_error() by default). */
typedef enum kiln_status {
    KILN_OK = 0,                  /* success */
    KILN_INVALID_ARGUMENT = 1,    /* NULL pointer, index out of range, bad option, misuse */
    KILN_ABI_MISMATCH = 2,        /* options.abi_version is not this library's ABI version */
    KILN_OUT_OF_MEMORY = 3,       /* allocating the session, its arena or its thread pool failed */
    KILN_WORKSPACE_TOO_SMALL = 4, /* options.workspace_size < workspace_size() */
    KILN_THREAD_ERROR = 5,        /* a worker thread could not be started */
    KILN_INTERNAL = 6,            /* a bug in the library, not a misuse: please report it */
    KILN_UNSUPPORTED_CPU = 7,     /* this CPU lacks an instruction set the code was built for */
} kiln_status;

/* Element types: ONNX's TensorProto.DataType codes. */
enum {
    KILN_DTYPE_FLOAT32 = 1, KILN_DTYPE_UINT8 = 2, KILN_DTYPE_INT8 = 3, KILN_DTYPE_UINT16 = 4,
    KILN_DTYPE_INT16 = 5, KILN_DTYPE_INT32 = 6, KILN_DTYPE_INT64 = 7, KILN_DTYPE_BOOL = 9,
    KILN_DTYPE_FLOAT16 = 10, KILN_DTYPE_FLOAT64 = 11, KILN_DTYPE_UINT32 = 12,
    KILN_DTYPE_UINT64 = 13,
    /* Storage types, as ONNX encodes them. The 4- and 2-bit ones are packed: element i sits in
     * byte i*bits/8, lowest bits first, so n elements take ceil(n*bits/8) bytes (nbytes). */
    KILN_DTYPE_BFLOAT16 = 16, KILN_DTYPE_FLOAT8E4M3FN = 17, KILN_DTYPE_FLOAT8E4M3FNUZ = 18,
    KILN_DTYPE_FLOAT8E5M2 = 19, KILN_DTYPE_FLOAT8E5M2FNUZ = 20, KILN_DTYPE_UINT4 = 21,
    KILN_DTYPE_INT4 = 22, KILN_DTYPE_FLOAT4E2M1 = 23, KILN_DTYPE_FLOAT8E8M0 = 24,
    KILN_DTYPE_UINT2 = 25, KILN_DTYPE_INT2 = 26
};

/* One input or output. Pointers stay valid while the library is loaded. */
typedef struct kiln_tensor_info {
    const char *name;        /* as in the ONNX model */
    int32_t dtype;           /* a KILN_DTYPE_* code */
    int32_t rank;            /* number of dimensions, 0 for a scalar */
    const int64_t *shape;    /* rank dimensions, row-major (C order) */
    size_t nbytes;           /* size of the caller's buffer for this tensor */
} kiln_tensor_info;

/* Session options: fill with options_init(), then change what you need. A workspace given
 * here must stay valid, and be left alone by the caller, until session_destroy(): the session
 * may keep data there between runs. */
typedef struct kiln_options {
    uint32_t abi_version;    /* set by options_init(); checked by session_create() */
    int32_t num_threads;     /* <= 0: one per CPU this process may run on, at most 64; else
                              * that many (at most 1024), the calling thread among them */
    void *workspace;         /* NULL: the session allocates its own arena; else 64-byte aligned */
    size_t workspace_size;   /* bytes at workspace; at least workspace_size() */
} kiln_options;

/* A model instance: its worker threads and its activation arena.
 * Threads: one run at a time per session: a second thread calling run on a session that is
 * running gets KILN_INVALID_ARGUMENT (it is not queued). Separate sessions are independent and
 * may run in parallel threads (unless given one workspace). A session pointer that was
 * destroyed, or belongs to another model, is refused with KILN_INVALID_ARGUMENT (detected until
 * a later session_create reuses the address). The library never prints, aborts or exits. */
typedef struct kiln_session kiln_session;

#endif /* KILN_ABI_V1_TYPES */
/* @types-end */

#ifndef KILN_PREFIX
#define KILN_PREFIX kiln_
#endif
#define KILN_CAT_(a, b) a##b
#define KILN_CAT(a, b) KILN_CAT_(a, b)
#define KILN_API(name) KILN_CAT(KILN_PREFIX, name)
#define KILN_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

/* @prototypes-begin */
/* The ABI version this library implements (KILN_ABI_VERSION when built). */
KILN_EXPORT uint32_t KILN_API(abi_version)(void);

/* The model's name, never NULL. */
KILN_EXPORT const char *KILN_API(model_name)(void);

/* How many inputs / outputs the model has (the header's NUM_INPUTS / NUM_OUTPUTS). */
KILN_EXPORT int32_t KILN_API(num_inputs)(void);
KILN_EXPORT int32_t KILN_API(num_outputs)(void);

/* Describe input / output `index` (0-based, in model order) into *out; KILN_INVALID_ARGUMENT
 * if out is NULL or index is out of range. */
KILN_EXPORT kiln_status KILN_API(input_info)(int32_t index, kiln_tensor_info *out);
KILN_EXPORT kiln_status KILN_API(output_info)(int32_t index, kiln_tensor_info *out);

/* Bytes of activation memory a session needs (what a user-supplied workspace must hold). */
KILN_EXPORT size_t KILN_API(workspace_size)(void);

/* Fill *options with defaults: this ABI version, default threads, no workspace. */
KILN_EXPORT void KILN_API(options_init)(kiln_options *options);

/* Create a session; options may be NULL (defaults). On failure *out is set to NULL and the
 * status says why: KILN_UNSUPPORTED_CPU (this CPU lacks an instruction set the code uses;
 * checked first), KILN_ABI_MISMATCH (options not filled by options_init()),
 * KILN_INVALID_ARGUMENT (out is NULL, num_threads above 1024, a workspace not 64-byte aligned,
 * a workspace_size without a workspace), KILN_WORKSPACE_TOO_SMALL, KILN_OUT_OF_MEMORY or
 * KILN_THREAD_ERROR. */
KILN_EXPORT kiln_status KILN_API(session_create)(const kiln_options *options,
    kiln_session **out);

/* Run the model once. inputs[i] / outputs[i] point to caller-owned buffers of
 * the nbytes that KILN_API(input_info)(i) / KILN_API(output_info)(i) report, row-major,
 * aligned to their element size; outputs must not overlap inputs or each other. Blocks until
 * the outputs are written. A NULL buffer (of a tensor of nonzero bytes), a misaligned one, a
 * session that is not live, or one running in another thread, is refused with
 * KILN_INVALID_ARGUMENT before anything runs. */
KILN_EXPORT kiln_status KILN_API(session_run)(kiln_session *session,
    const void *const *inputs, void *const *outputs);

/* The actual dims (output_info's rank of them) of output `index` from the session's most
 * recent successful run. Most outputs are static: their dims are output_info's shape, always.
 * An output of data-dependent size (NonZero, NonMaxSuppression, Unique) has one *bounded* dim:
 * output_info's shape and nbytes give its upper bound (allocate that), the run writes the
 * tensor compactly (row-major with the actual dims) at the start of the buffer, leaving the
 * rest unspecified, and this call reports the actual dims (KILN_INVALID_ARGUMENT before the
 * first run). Added in ABI version 1 (libraries built before it lack the symbol). */
KILN_EXPORT kiln_status KILN_API(output_shape)(const kiln_session *session, int32_t index,
    int64_t *dims);

/* The artifact's manifest: a JSON object (UTF-8, never NULL) saying what it is: the Kiln
 * version, the target and CPU, the options it was built with, the model's sha256, its inputs
 * and outputs, arena and weight sizes, and the kernel and schedule of every fused group. The
 * same text is the ELF section .kiln_manifest, readable without loading the library. Added
 * in ABI version 1 (libraries built before it lack the symbol). */
KILN_EXPORT const char *KILN_API(manifest)(void);

/* Stop the session's threads and free what it allocated (not a workspace the caller gave).
 * NULL is a no-op (KILN_OK); a session that is running, already destroyed or another model's
 * is refused with KILN_INVALID_ARGUMENT. */
KILN_EXPORT kiln_status KILN_API(session_destroy)(kiln_session *session);

/* Why the calling thread's most recent failed call into this library failed ("" if none).
 * The text stays valid until that thread's next failing call. */
KILN_EXPORT const char *KILN_API(last_error)(void);

/* A short constant description of a status, never NULL. */
KILN_EXPORT const char *KILN_API(status_string)(kiln_status status);
/* @prototypes-end */

#ifdef __cplusplus
}
#endif

#endif /* KILN_ABI_H */
