/* kiln_emu_driver: runs a Kiln artifact for another architecture under QEMU user mode on
 * behalf of kiln.runtime.emulate (Python). Built for the artifact's target with zig cc.
 *
 *   kiln_emu_driver ARTIFACT.so PREFIX THREADS
 *
 * Protocol (little-endian, over stdin/stdout):
 *   driver -> host: "KILNEMU1", then the model: str name, u64 workspace size, i32 inputs,
 *                   i32 outputs, and per tensor: str name, i32 dtype, i32 rank, i64 dims[rank],
 *                   u64 nbytes (str = u32 length + bytes). Then i32 status of session_create
 *                   (+ str status_string, str last_error when not 0).
 *   host -> driver: 'R' + every input's bytes in order  -> i32 status, then every output's
 *                   bytes followed by its actual dims, i64[rank] (status 0), or str
 *                   status_string, str last_error;  'Q' (or end of input) -> exit 0. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln_abi.h"

typedef const char *(*str_fn)(void);
typedef int32_t (*count_fn)(void);
typedef kiln_status (*info_fn)(int32_t, kiln_tensor_info *);
typedef size_t (*size_fn)(void);
typedef void (*opts_fn)(kiln_options *);
typedef kiln_status (*create_fn)(const kiln_options *, kiln_session **);
typedef kiln_status (*run_fn)(kiln_session *, const void *const *, void *const *);
typedef kiln_status (*destroy_fn)(kiln_session *);
typedef kiln_status (*shape_fn)(const kiln_session *, int32_t, int64_t *);

static void *lib;
static const char *prefix;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "kiln_emu_driver: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(3);
}

static void *sym(const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    void *p = dlsym(lib, full);
    if (!p) die("missing symbol", full);
    return p;
}

static void put(const void *data, size_t n) {
    if (n && fwrite(data, 1, n, stdout) != n) die("cannot write to the host", NULL);
}

static void put_i32(int32_t v) { put(&v, sizeof v); }
static void put_u64(uint64_t v) { put(&v, sizeof v); }

static void put_str(const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    put(&n, sizeof n);
    put(s, n);
}

static int get(void *data, size_t n) {
    return fread(data, 1, n, stdin) == n;
}

static void describe(info_fn info, int32_t count, size_t *sizes, int32_t *ranks) {
    for (int32_t i = 0; i < count; ++i) {
        kiln_tensor_info t;
        if (info(i, &t) != KILN_OK) die("cannot describe a tensor", NULL);
        put_str(t.name);
        put_i32(t.dtype);
        put_i32(t.rank);
        for (int32_t k = 0; k < t.rank; ++k) put(&t.shape[k], sizeof(int64_t));
        put_u64(t.nbytes);
        sizes[i] = t.nbytes;
        ranks[i] = t.rank;
    }
}

static void *buffer(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1) != 0) die("out of memory", NULL);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: kiln_emu_driver ARTIFACT.so PREFIX THREADS", NULL);
    prefix = argv[2];
    lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) die("cannot load the artifact", dlerror());
    str_fn last_error = (str_fn)sym("last_error");
    const char *(*status_string)(kiln_status) =
        (const char *(*)(kiln_status))sym("status_string");
    int32_t n_in = ((count_fn)sym("num_inputs"))();
    int32_t n_out = ((count_fn)sym("num_outputs"))();
    size_t *in_sizes = calloc((size_t)n_in + 1, sizeof(size_t));
    size_t *out_sizes = calloc((size_t)n_out + 1, sizeof(size_t));
    put("KILNEMU1", 8);
    put_str(((str_fn)sym("model_name"))());
    put_u64(((size_fn)sym("workspace_size"))());
    put_i32(n_in);
    put_i32(n_out);
    int32_t *in_ranks = calloc((size_t)n_in + 1, sizeof(int32_t));
    int32_t *out_ranks = calloc((size_t)n_out + 1, sizeof(int32_t));
    describe((info_fn)sym("input_info"), n_in, in_sizes, in_ranks);
    describe((info_fn)sym("output_info"), n_out, out_sizes, out_ranks);

    kiln_options options;
    ((opts_fn)sym("options_init"))(&options);
    options.num_threads = atoi(argv[3]);
    kiln_session *session = NULL;
    kiln_status status = ((create_fn)sym("session_create"))(&options, &session);
    put_i32(status);
    if (status != KILN_OK) {
        put_str(status_string(status));
        put_str(last_error());
        fflush(stdout);
        return 0;
    }
    fflush(stdout);

    void **ins = calloc((size_t)n_in + 1, sizeof(void *));
    void **outs = calloc((size_t)n_out + 1, sizeof(void *));
    for (int32_t i = 0; i < n_in; ++i) ins[i] = buffer(in_sizes[i]);
    for (int32_t i = 0; i < n_out; ++i) outs[i] = buffer(out_sizes[i]);
    run_fn run = (run_fn)sym("session_run");
    shape_fn output_shape = (shape_fn)sym("output_shape");
    int64_t dims[64];
    char command;
    while (get(&command, 1) && command == 'R') {
        for (int32_t i = 0; i < n_in; ++i)
            if (!get(ins[i], in_sizes[i])) die("the host closed the pipe mid-input", NULL);
        status = run(session, (const void *const *)ins, (void *const *)outs);
        put_i32(status);
        if (status == KILN_OK)
            for (int32_t i = 0; i < n_out; ++i) {
                put(outs[i], out_sizes[i]);
                if (out_ranks[i] > 64 || output_shape(session, i, dims) != KILN_OK)
                    die("cannot query an output's shape", last_error());
                put(dims, (size_t)out_ranks[i] * sizeof(int64_t));
            }
        else {
            put_str(status_string(status));
            put_str(last_error());
        }
        fflush(stdout);
    }
    ((destroy_fn)sym("session_destroy"))(session);
    return 0;
}
