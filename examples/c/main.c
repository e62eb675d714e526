/* Run a Kiln-compiled model from C.
 *
 * Compile a model, then build this program beside it:
 *
 *   kiln compile model.onnx --target host -o model.so     (writes model.so and model.h)
 *   cc -O2 -std=c11 main.c -I. -L. -l:model.so -Wl,-rpath,'$ORIGIN' -o main
 *   ./main [threads]
 *
 * It asks the model for its inputs and outputs, fills the inputs with a fixed pattern, runs
 * once, and prints each output's shape and first values. Any error status ends it with the
 * library's explanation and exit status 1. model.h names its functions with the model's
 * symbol prefix, kiln_ unless `kiln compile` was told otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int failed(const char *what, kiln_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, kiln_status_string(status), kiln_last_error());
    return 1;
}

static const char *dtype_name(int32_t dtype) {
    switch (dtype) {
    case KILN_DTYPE_FLOAT32: return "float32";
    case KILN_DTYPE_FLOAT64: return "float64";
    case KILN_DTYPE_FLOAT16: return "float16";
    case KILN_DTYPE_INT8: return "int8";
    case KILN_DTYPE_INT16: return "int16";
    case KILN_DTYPE_INT32: return "int32";
    case KILN_DTYPE_INT64: return "int64";
    case KILN_DTYPE_UINT8: return "uint8";
    case KILN_DTYPE_UINT16: return "uint16";
    case KILN_DTYPE_UINT32: return "uint32";
    case KILN_DTYPE_UINT64: return "uint64";
    case KILN_DTYPE_BOOL: return "bool";
    }
    return "unknown";
}

/* float16 bits <-> float, enough for the values used and printed here. */
static float half_to_float(uint16_t h) {
    int sign = h >> 15, exp = (h >> 10) & 31, frac = h & 1023;
    float v = exp == 0 ? frac / 16777216.0f                        /* subnormal: frac * 2^-24 */
                       : (1.0f + frac / 1024.0f) * (float)(1 << exp) / 32768.0f;
    if (exp == 31) v = frac ? NAN : INFINITY;
    return sign ? -v : v;
}

/* The pattern: element i gets a small value from (i * 7) % 17, so every run is the same. */
static void fill(const kiln_tensor_info *t, void *buf) {
    static const uint16_t halves[] = {0x0000, 0x3c00, 0xbc00, 0x3800, 0xb800}; /* 0 1 -1 .5 -.5 */
    size_t count = 1;
    for (int32_t d = 0; d < t->rank; d++) count *= (size_t)t->shape[d];
    for (size_t i = 0; i < count; i++) {
        int v = (int)((i * 7) % 17) - 8;
        switch (t->dtype) {
        case KILN_DTYPE_FLOAT32: ((float *)buf)[i] = (float)v / 8.0f; break;
        case KILN_DTYPE_FLOAT64: ((double *)buf)[i] = v / 8.0; break;
        case KILN_DTYPE_FLOAT16: ((uint16_t *)buf)[i] = halves[i % 5]; break;
        case KILN_DTYPE_INT8: ((int8_t *)buf)[i] = (int8_t)v; break;
        case KILN_DTYPE_INT16: ((int16_t *)buf)[i] = (int16_t)v; break;
        case KILN_DTYPE_INT32: ((int32_t *)buf)[i] = v; break;
        case KILN_DTYPE_INT64: ((int64_t *)buf)[i] = v; break;
        case KILN_DTYPE_UINT8: case KILN_DTYPE_BOOL: ((uint8_t *)buf)[i] = (uint8_t)(i % 2); break;
        case KILN_DTYPE_UINT16: ((uint16_t *)buf)[i] = (uint16_t)(v + 8); break;
        case KILN_DTYPE_UINT32: ((uint32_t *)buf)[i] = (uint32_t)(v + 8); break;
        case KILN_DTYPE_UINT64: ((uint64_t *)buf)[i] = (uint64_t)(v + 8); break;
        }
    }
}

static double element(const kiln_tensor_info *t, const void *buf, size_t i) {
    switch (t->dtype) {
    case KILN_DTYPE_FLOAT32: return ((const float *)buf)[i];
    case KILN_DTYPE_FLOAT64: return ((const double *)buf)[i];
    case KILN_DTYPE_FLOAT16: return half_to_float(((const uint16_t *)buf)[i]);
    case KILN_DTYPE_INT8: return ((const int8_t *)buf)[i];
    case KILN_DTYPE_INT16: return ((const int16_t *)buf)[i];
    case KILN_DTYPE_INT32: return ((const int32_t *)buf)[i];
    case KILN_DTYPE_INT64: return (double)((const int64_t *)buf)[i];
    case KILN_DTYPE_UINT16: return ((const uint16_t *)buf)[i];
    case KILN_DTYPE_UINT32: return ((const uint32_t *)buf)[i];
    case KILN_DTYPE_UINT64: return (double)((const uint64_t *)buf)[i];
    default: return ((const uint8_t *)buf)[i]; /* uint8, bool */
    }
}

static void print_tensor(const char *kind, const kiln_tensor_info *t, const void *buf) {
    size_t count = 1;
    printf("%s %s: %s [", kind, t->name, dtype_name(t->dtype));
    for (int32_t d = 0; d < t->rank; d++) {
        printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
        count *= (size_t)t->shape[d];
    }
    printf("]");
    if (buf != NULL) {
        printf(" =");
        for (size_t i = 0; i < count && i < 8; i++) printf(" %g", element(t, buf, i));
        if (count > 8) printf(" ...");
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (kiln_abi_version() != KILN_ABI_VERSION) {
        fprintf(stderr, "model.so speaks ABI %u, model.h %u\n", (unsigned)kiln_abi_version(),
                (unsigned)KILN_ABI_VERSION);
        return 1;
    }
    kiln_options options;
    kiln_options_init(&options);
    options.num_threads = argc > 1 ? atoi(argv[1]) : 0; /* 0: one per CPU */
    kiln_session *session = NULL;
    kiln_status status = kiln_session_create(&options, &session);
    if (status != KILN_OK) return failed("kiln_session_create", status);
    printf("model %s: %d input(s), %d output(s), %zu bytes of workspace\n", kiln_model_name(),
           (int)kiln_num_inputs(), (int)kiln_num_outputs(), kiln_workspace_size());

    int32_t n_in = kiln_num_inputs(), n_out = kiln_num_outputs();
    const void **inputs = calloc((size_t)n_in + 1, sizeof *inputs);
    void **outputs = calloc((size_t)n_out + 1, sizeof *outputs);
    kiln_tensor_info *out_info = calloc((size_t)n_out + 1, sizeof *out_info);
    int err = inputs == NULL || outputs == NULL || out_info == NULL;
    for (int32_t i = 0; i < n_in && !err; i++) {
        kiln_tensor_info t;
        if ((status = kiln_input_info(i, &t)) != KILN_OK) return failed("kiln_input_info", status);
        void *buf = malloc(t.nbytes ? t.nbytes : 1); /* malloc aligns for every element type */
        err = buf == NULL;
        if (buf) fill(&t, buf);
        inputs[i] = buf;
        print_tensor("input ", &t, NULL);
    }
    for (int32_t i = 0; i < n_out && !err; i++) {
        if ((status = kiln_output_info(i, &out_info[i])) != KILN_OK)
            return failed("kiln_output_info", status);
        outputs[i] = malloc(out_info[i].nbytes ? out_info[i].nbytes : 1);
        err = outputs[i] == NULL;
    }
    if (err) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    status = kiln_session_run(session, inputs, outputs);
    if (status != KILN_OK) return failed("kiln_session_run", status);
    for (int32_t i = 0; i < n_out; i++) print_tensor("output", &out_info[i], outputs[i]);

    status = kiln_session_destroy(session);
    if (status != KILN_OK) return failed("kiln_session_destroy", status);
    for (int32_t i = 0; i < n_in; i++) free((void *)inputs[i]);
    for (int32_t i = 0; i < n_out; i++) free(outputs[i]);
    free(inputs);
    free(outputs);
    free(out_info);
    return 0;
}
