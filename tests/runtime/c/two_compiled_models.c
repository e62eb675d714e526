/* Two Kiln-compiled models in one program: a.h (prefix resnet_) and b.h (prefix bert_),
 * linked as two static or two shared libraries. Each model's float32 inputs get the pattern
 * ((7 i) % 17 - 8) / 8; every output value is printed as "<model> <output>: v v v ...", for
 * the test to compare with ONNX Runtime. Exit status 1 on any error status. */
#include <stdio.h>
#include <stdlib.h>

#include "a.h"
#include "b.h"

#define MAX_TENSORS 8

static size_t count(const kiln_tensor_info *t) {
    size_t n = 1;
    for (int32_t d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Run model P (its functions are P##name) once and print its outputs. */
#define RUN_MODEL(P, label)                                                                \
    do {                                                                                   \
        kiln_session *s;                                                                   \
        kiln_status st = P##session_create(NULL, &s);                                      \
        if (st != KILN_OK) {                                                               \
            fprintf(stderr, "%s: %s\n", label, P##last_error());                           \
            return 1;                                                                      \
        }                                                                                  \
        const void *in[MAX_TENSORS];                                                       \
        void *out[MAX_TENSORS];                                                            \
        kiln_tensor_info info;                                                             \
        for (int32_t i = 0; i < P##num_inputs(); i++) {                                    \
            P##input_info(i, &info);                                                       \
            float *x = malloc(info.nbytes);                                                \
            for (size_t k = 0; k < count(&info); k++)                                      \
                x[k] = (float)((int)((k * 7) % 17) - 8) / 8.0f;                            \
            in[i] = x;                                                                     \
        }                                                                                  \
        for (int32_t i = 0; i < P##num_outputs(); i++) {                                   \
            P##output_info(i, &info);                                                      \
            out[i] = malloc(info.nbytes);                                                  \
        }                                                                                  \
        st = P##session_run(s, in, out);                                                   \
        if (st != KILN_OK) {                                                               \
            fprintf(stderr, "%s: %s\n", label, P##last_error());                           \
            return 1;                                                                      \
        }                                                                                  \
        for (int32_t i = 0; i < P##num_outputs(); i++) {                                   \
            P##output_info(i, &info);                                                      \
            printf("%s %s:", label, info.name);                                            \
            for (size_t k = 0; k < count(&info); k++) printf(" %.9g", ((float *)out[i])[k]); \
            printf("\n");                                                                  \
            free(out[i]);                                                                  \
        }                                                                                  \
        for (int32_t i = 0; i < P##num_inputs(); i++) free((void *)in[i]);                 \
        P##session_destroy(s);                                                             \
    } while (0)

int main(void) {
    printf("resnet model %s, bert model %s\n", resnet_model_name(), bert_model_name());
    RUN_MODEL(resnet_, "resnet");
    RUN_MODEL(bert_, "bert");
    return 0;
}
