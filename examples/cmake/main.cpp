// Run a Kiln-compiled model from C++, built with CMake (see CMakeLists.txt).
//
// model.h is the header `kiln compile -o .../model.a` (or model.so) wrote, with the default
// symbol prefix kiln_. Float32 inputs get the pattern ((7 i) % 17 - 8) / 8 (as
// examples/c/main.c), the model runs once, and each output is printed as
// "output NAME [d0, d1, ...] = v0 v1 ..." (at most 16 values). Any error status ends it
// with the library's explanation and exit status 1.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "model.h"

namespace {

int failed(const char *what, kiln_status status) {
    std::fprintf(stderr, "%s failed: %s: %s\n", what, kiln_status_string(status),
                 kiln_last_error());
    return 1;
}

size_t element_count(const kiln_tensor_info &t) {
    size_t count = 1;
    for (int32_t d = 0; d < t.rank; d++) count *= static_cast<size_t>(t.shape[d]);
    return count;
}

}  // namespace

int main(int argc, char **argv) {
    kiln_options options;
    kiln_options_init(&options);
    options.num_threads = argc > 1 ? std::atoi(argv[1]) : 1;
    kiln_session *session = nullptr;
    kiln_status status = kiln_session_create(&options, &session);
    if (status != KILN_OK) return failed("kiln_session_create", status);
    std::printf("model %s\n", kiln_model_name());

    // Buffers as float vectors: malloc-style alignment is enough for every element type.
    std::vector<std::vector<float>> inputs(kiln_num_inputs()), outputs(kiln_num_outputs());
    std::vector<const void *> in;
    std::vector<void *> out;
    for (int32_t i = 0; i < kiln_num_inputs(); i++) {
        kiln_tensor_info t;
        if ((status = kiln_input_info(i, &t)) != KILN_OK) return failed("kiln_input_info", status);
        if (t.dtype != KILN_DTYPE_FLOAT32) {
            std::fprintf(stderr, "input %s is not float32: this example fills float32 only\n",
                         t.name);
            return 1;
        }
        inputs[i].resize(element_count(t) + 1);
        for (size_t k = 0; k < element_count(t); k++)
            inputs[i][k] = static_cast<float>(static_cast<int>((k * 7) % 17) - 8) / 8.0f;
        in.push_back(inputs[i].data());
    }
    for (int32_t i = 0; i < kiln_num_outputs(); i++) {
        kiln_tensor_info t;
        if ((status = kiln_output_info(i, &t)) != KILN_OK)
            return failed("kiln_output_info", status);
        outputs[i].resize(t.nbytes / sizeof(float) + 1);
        out.push_back(outputs[i].data());
    }
    if ((status = kiln_session_run(session, in.data(), out.data())) != KILN_OK)
        return failed("kiln_session_run", status);

    for (int32_t i = 0; i < kiln_num_outputs(); i++) {
        kiln_tensor_info t;
        kiln_output_info(i, &t);
        std::printf("output %s [", t.name);
        for (int32_t d = 0; d < t.rank; d++)
            std::printf(d ? ", %lld" : "%lld", static_cast<long long>(t.shape[d]));
        std::printf("] =");
        if (t.dtype == KILN_DTYPE_FLOAT32)
            for (size_t k = 0; k < element_count(t) && k < 16; k++)
                std::printf(" %.9g", outputs[i][k]);
        std::printf("\n");
    }
    kiln_session_destroy(session);
    return 0;
}
