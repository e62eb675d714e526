/* The Kiln runtime, compiled into every artifact together with the generated model code:
 * the public C API of kiln_abi.h (session life cycle, tensor queries, statuses, error text)
 * on top of KILN_MODEL (kiln_model.h). The thread pool behind kiln_parallel_for is in
 * kiln_pool.c.
 *
 * Build: C11, -fPIC -fvisibility=hidden -pthread -DKILN_PREFIX=name_ ; needs only libc and
 * libpthread. Nothing here prints, aborts or exits, and the run path allocates nothing.
 *
 * Sessions: one run at a time per session (a concurrent run is refused, not serialized);
 * separate sessions are independent. Every live session of this library is on a list guarded
 * by a mutex; a pointer that is not on it (never created here, destroyed, or another model's)
 * is refused without being read. A destroyed session's address can be handed out again by a
 * later session_create: until then, use after destroy is always detected. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln_abi.h"
#include "kiln_model.h"
#include "kiln_pool.h"

/* The model this CPU runs (kiln_model.h): the one built, or the best of its CPU levels. */
#define MODEL (*kiln_active_model())

#define KILN_SESSION_MAGIC 0x4B494C4Eu /* "KILN"; cleared on destroy */
#define KILN_ALIGN 64
#define KILN_MAX_THREADS 1024
#define KILN_DEFAULT_MAX_THREADS 64

/* ---- error text --------------------------------------------------------------------- */

static _Thread_local char kiln_error_text[1024];   /* room for every missing ISA name */

static kiln_status fail(kiln_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static kiln_status fail(kiln_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(kiln_error_text, sizeof kiln_error_text, fmt, args);
    va_end(args);
    return status;
}

KILN_EXPORT const char *KILN_API(last_error)(void) { return kiln_error_text; }

KILN_EXPORT const char *KILN_API(status_string)(kiln_status status) {
    switch (status) {
    case KILN_OK: return "ok";
    case KILN_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ABI_MISMATCH: return "ABI version mismatch";
    case KILN_OUT_OF_MEMORY: return "out of memory";
    case KILN_WORKSPACE_TOO_SMALL: return "workspace too small";
    case KILN_THREAD_ERROR: return "thread error";
    case KILN_INTERNAL: return "internal error";
    case KILN_UNSUPPORTED_CPU: return "unsupported CPU";
    }
    return "unknown status";
}

/* ---- model queries ------------------------------------------------------------------ */

KILN_EXPORT uint32_t KILN_API(abi_version)(void) { return KILN_ABI_VERSION; }
KILN_EXPORT const char *KILN_API(model_name)(void) {
    return MODEL.name ? MODEL.name : "";
}
KILN_EXPORT const char *KILN_API(manifest)(void) { return KILN_MANIFEST; }
KILN_EXPORT int32_t KILN_API(num_inputs)(void) { return MODEL.num_inputs; }
KILN_EXPORT int32_t KILN_API(num_outputs)(void) { return MODEL.num_outputs; }
KILN_EXPORT size_t KILN_API(workspace_size)(void) { return MODEL.arena_size; }

static kiln_status tensor_info(const char *kind, const kiln_tensor_desc *descs, int32_t count,
                               int32_t index, kiln_tensor_info *out) {
    if (out == NULL) return fail(KILN_INVALID_ARGUMENT, "%s_info: out is NULL", kind);
    if (index < 0 || index >= count)
        return fail(KILN_INVALID_ARGUMENT, "%s index %d is out of range: the model has %d %ss",
                    kind, (int)index, (int)count, kind);
    const kiln_tensor_desc *d = &descs[index];
    out->name = d->name;
    out->dtype = d->dtype;
    out->rank = d->rank;
    out->shape = d->shape;
    out->nbytes = d->nbytes;
    return KILN_OK;
}

KILN_EXPORT kiln_status KILN_API(input_info)(int32_t index, kiln_tensor_info *out) {
    return tensor_info("input", MODEL.inputs, MODEL.num_inputs, index, out);
}

KILN_EXPORT kiln_status KILN_API(output_info)(int32_t index, kiln_tensor_info *out) {
    return tensor_info("output", MODEL.outputs, MODEL.num_outputs, index, out);
}

/* ---- sessions ----------------------------------------------------------------------- */

struct kiln_session {
    uint32_t magic;
    const kiln_model *model; /* catches a session handed to another model's library */
    unsigned char *arena;
    int owns_arena;
    kiln_pool *pool; /* NULL with one thread */
    atomic_int busy; /* set while a run (or destroy) is in progress */
    kiln_session *next; /* on the live list */
    double *profile; /* seconds per fused group while profiling (session_set_profiling) */
    int profiling;
    int64_t *counts; /* per output: actual extent of its bounded dim in the last run */
    int has_run;     /* a run succeeded: counts are valid */
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static kiln_session *live_sessions;

/* Under live_lock: is s a live session of this library (compares pointers only)? */
static int on_live_list(const kiln_session *s) {
    for (const kiln_session *p = live_sessions; p != NULL; p = p->next)
        if (p == s) return 1;
    return 0;
}

/* If s is live and idle, mark it busy and return 1 (it cannot be destroyed meanwhile). */
static int claim(kiln_session *s, int *was_busy) {
    *was_busy = 0;
    pthread_mutex_lock(&live_lock);
    int ok = s != NULL && on_live_list(s);
    if (ok && atomic_exchange(&s->busy, 1) != 0) {
        ok = 0;
        *was_busy = 1;
    }
    pthread_mutex_unlock(&live_lock);
    return ok;
}

KILN_EXPORT void KILN_API(options_init)(kiln_options *options) {
    if (options == NULL) return;
    memset(options, 0, sizeof *options);
    options->abi_version = KILN_ABI_VERSION;
}

static kiln_status check_options(const kiln_options *o) {
    if (o->abi_version != KILN_ABI_VERSION)
        return fail(KILN_ABI_MISMATCH,
                    "options.abi_version is %u but this library implements ABI version %u; "
                    "initialize options with options_init()",
                    (unsigned)o->abi_version, (unsigned)KILN_ABI_VERSION);
    if (o->num_threads > KILN_MAX_THREADS)
        return fail(KILN_INVALID_ARGUMENT, "options.num_threads is %d, more than the maximum %d",
                    (int)o->num_threads, KILN_MAX_THREADS);
    if (o->workspace == NULL && o->workspace_size != 0)
        return fail(KILN_INVALID_ARGUMENT,
                    "options.workspace_size is %zu but options.workspace is NULL",
                    o->workspace_size);
    if (o->workspace != NULL && (uintptr_t)o->workspace % KILN_ALIGN != 0)
        return fail(KILN_INVALID_ARGUMENT, "options.workspace is not %d-byte aligned",
                    KILN_ALIGN);
    if (o->workspace != NULL && o->workspace_size < MODEL.arena_size)
        return fail(KILN_WORKSPACE_TOO_SMALL,
                    "options.workspace_size is %zu bytes but the model needs %zu",
                    o->workspace_size, MODEL.arena_size);
    return KILN_OK;
}

KILN_EXPORT kiln_status KILN_API(session_create)(const kiln_options *options,
                                                 kiln_session **out) {
    if (out == NULL) return fail(KILN_INVALID_ARGUMENT, "session_create: out is NULL");
    *out = NULL;
    const char *missing = kiln_missing_cpu_features();
    if (missing != NULL)
        return fail(KILN_UNSUPPORTED_CPU, "this CPU lacks %s, which the model's code was "
                    "compiled to use; compile it for this CPU (kiln compile --cpu, e.g. "
                    "--cpu x86-64-v3) or for several (--cpu x86-64-v3,x86-64-v4)", missing);
    kiln_options defaults;
    KILN_API(options_init)(&defaults);
    const kiln_options *o = options ? options : &defaults;
    kiln_status st = check_options(o);
    if (st != KILN_OK) return st;

    kiln_session *s = calloc(1, sizeof *s);
    if (s == NULL) return fail(KILN_OUT_OF_MEMORY, "cannot allocate a session");
    s->model = &MODEL;
    if (o->workspace != NULL) {
        s->arena = o->workspace;
    } else if (s->model->arena_size > 0) {
        size_t size = (s->model->arena_size + KILN_ALIGN - 1) / KILN_ALIGN * KILN_ALIGN;
        s->arena = aligned_alloc(KILN_ALIGN, size);
        s->owns_arena = 1;
        if (s->arena == NULL) {
            free(s);
            return fail(KILN_OUT_OF_MEMORY, "cannot allocate the %zu-byte arena", size);
        }
    }
    int threads = o->num_threads > 0 ? (int)o->num_threads
                                     : kiln_default_threads(KILN_DEFAULT_MAX_THREADS);
    if (threads > 1) {
        int worker = 0, err = kiln_pool_create(threads, &s->pool, &worker);
        if (err != 0) {
            if (s->owns_arena) free(s->arena);
            free(s);
            if (err == ENOMEM)
                return fail(KILN_OUT_OF_MEMORY, "cannot allocate a pool of %d threads", threads);
            return fail(KILN_THREAD_ERROR, "cannot start worker thread %d of %d: %s", worker,
                        threads - 1, strerror(err));
        }
    }
    if (s->model->num_outputs > 0) {
        s->counts = calloc((size_t)s->model->num_outputs, sizeof *s->counts);
        if (s->counts == NULL) {
            if (s->pool != NULL) kiln_pool_destroy(s->pool);
            if (s->owns_arena) free(s->arena);
            free(s);
            return fail(KILN_OUT_OF_MEMORY, "cannot allocate the session's output counts");
        }
    }
    if (s->model->init != NULL) {   /* data derived from the weights, made once */
        kiln_exec e = {s->arena, NULL, NULL, s->pool, NULL};
        s->model->init(&e);
    }
    atomic_init(&s->busy, 0);
    s->magic = KILN_SESSION_MAGIC;
    pthread_mutex_lock(&live_lock);
    s->next = live_sessions;
    live_sessions = s;
    pthread_mutex_unlock(&live_lock);
    *out = s;
    return KILN_OK;
}

#define NOT_LIVE "not a live session of this model (NULL, destroyed, or another model's)"

static kiln_status check_buffers(const char *kind, const kiln_tensor_desc *descs, int32_t n,
                                 const void *const *ptrs) {
    if (n > 0 && ptrs == NULL) return fail(KILN_INVALID_ARGUMENT, "session_run: %ss is NULL", kind);
    for (int32_t i = 0; i < n; i++) {
        const kiln_tensor_desc *d = &descs[i];
        size_t elems = 1;
        for (int32_t k = 0; k < d->rank; k++) elems *= (size_t)d->shape[k];
        size_t align = elems ? d->nbytes / elems : 1;
        if (ptrs[i] == NULL && d->nbytes > 0)
            return fail(KILN_INVALID_ARGUMENT, "session_run: %s %d ('%s') is NULL", kind,
                        (int)i, d->name);
        if (align > 1 && (uintptr_t)ptrs[i] % align != 0)
            return fail(KILN_INVALID_ARGUMENT,
                        "session_run: %s %d ('%s') is not aligned to its %zu-byte elements",
                        kind, (int)i, d->name, align);
    }
    return KILN_OK;
}

KILN_EXPORT kiln_status KILN_API(session_run)(kiln_session *s, const void *const *inputs,
                                              void *const *outputs) {
    int busy;
    if (!claim(s, &busy)) {
        if (busy)
            return fail(KILN_INVALID_ARGUMENT, "session_run: the session is already running "
                                               "in another thread; use one session per thread");
        return fail(KILN_INVALID_ARGUMENT, "session_run: " NOT_LIVE);
    }
    const kiln_model *m = s->model;
    kiln_status st = check_buffers("input", m->inputs, m->num_inputs, inputs);
    if (st == KILN_OK)
        st = check_buffers("output", m->outputs, m->num_outputs, (const void *const *)outputs);
    if (st != KILN_OK) {
        atomic_store(&s->busy, 0);
        return st;
    }
    kiln_exec e = {s->arena, inputs, outputs, s->pool, s->profiling ? s->profile : NULL};
    m->run(&e);
    for (int32_t i = 0; m->bounds != NULL && i < m->num_outputs; i++) {
        if (m->bounds[i].bounded) {
            int64_t n;
            memcpy(&n, s->arena + m->bounds[i].count_offset, sizeof n);
            s->counts[i] = n;
        }
    }
    s->has_run = 1;
    atomic_store(&s->busy, 0);
    return KILN_OK;
}

KILN_EXPORT kiln_status KILN_API(output_shape)(const kiln_session *s, int32_t index,
                                               int64_t *dims) {
    if (dims == NULL) return fail(KILN_INVALID_ARGUMENT, "output_shape: dims is NULL");
    pthread_mutex_lock(&live_lock);
    int live = s != NULL && on_live_list(s);
    pthread_mutex_unlock(&live_lock);
    if (!live) return fail(KILN_INVALID_ARGUMENT, "output_shape: " NOT_LIVE);
    if (index < 0 || index >= s->model->num_outputs)
        return fail(KILN_INVALID_ARGUMENT,
                    "output index %d is out of range: the model has %d outputs", (int)index,
                    (int)s->model->num_outputs);
    const kiln_tensor_desc *d = &s->model->outputs[index];
    const kiln_output_bound *b = s->model->bounds ? &s->model->bounds[index] : NULL;
    int bounded = b != NULL && b->bounded;
    if (bounded && !s->has_run)
        return fail(KILN_INVALID_ARGUMENT,
                    "output_shape: output %d ('%s') has a data-dependent size and the session "
                    "has not run yet; call session_run first", (int)index, d->name);
    for (int32_t k = 0; k < d->rank; k++)
        dims[k] = bounded && k == b->axis ? s->counts[index] : d->shape[k];
    return KILN_OK;
}

KILN_EXPORT kiln_status KILN_API(session_destroy)(kiln_session *s) {
    if (s == NULL) return KILN_OK;
    pthread_mutex_lock(&live_lock);
    kiln_session **link = &live_sessions;
    while (*link != NULL && *link != s) link = &(*link)->next;
    int found = *link != NULL, running = found && atomic_exchange(&s->busy, 1) != 0;
    if (found && !running) *link = s->next; /* off the list: now nobody else can claim it */
    pthread_mutex_unlock(&live_lock);
    if (!found) return fail(KILN_INVALID_ARGUMENT, "session_destroy: " NOT_LIVE);
    if (running) return fail(KILN_INVALID_ARGUMENT, "session_destroy: the session is running");
    s->magic = 0;
    if (s->pool != NULL) kiln_pool_destroy(s->pool);
    if (s->owns_arena) free(s->arena);
    free(s->profile);
    free(s->counts);
    free(s);
    return KILN_OK;
}

/* ---- profiling (kiln run --profile) --------------------------------------------------- */

KILN_EXPORT int32_t KILN_API(profile_groups)(void) { return MODEL.num_groups; }

KILN_EXPORT const char *KILN_API(profile_group_name)(int32_t index) {
    if (index < 0 || index >= MODEL.num_groups || MODEL.group_names == NULL) return "";
    return MODEL.group_names[index];
}

/* Turn per-group timing on (counters reset to zero) or off. Allocates once, here, never on
 * the run path. */
KILN_EXPORT kiln_status KILN_API(session_set_profiling)(kiln_session *s, int32_t enabled) {
    int busy;
    if (!claim(s, &busy))
        return fail(KILN_INVALID_ARGUMENT, "session_set_profiling: %s",
                    busy ? "the session is running" : NOT_LIVE);
    kiln_status st = KILN_OK;
    if (enabled && s->profile == NULL && s->model->num_groups > 0) {
        s->profile = calloc((size_t)s->model->num_groups, sizeof *s->profile);
        if (s->profile == NULL) st = fail(KILN_OUT_OF_MEMORY, "cannot allocate the profile");
    }
    if (enabled && s->profile != NULL)
        memset(s->profile, 0, (size_t)s->model->num_groups * sizeof *s->profile);
    s->profiling = enabled != 0 && s->profile != NULL;
    atomic_store(&s->busy, 0);
    return st;
}

/* Copy the accumulated seconds of each group (profile_groups() of them) into `out`. */
KILN_EXPORT kiln_status KILN_API(session_profile)(kiln_session *s, double *out) {
    if (out == NULL) return fail(KILN_INVALID_ARGUMENT, "session_profile: out is NULL");
    int busy;
    if (!claim(s, &busy))
        return fail(KILN_INVALID_ARGUMENT, "session_profile: %s",
                    busy ? "the session is running" : NOT_LIVE);
    for (int32_t i = 0; i < s->model->num_groups; i++)
        out[i] = s->profile != NULL ? s->profile[i] : 0.0;
    atomic_store(&s->busy, 0);
    return KILN_OK;
}
