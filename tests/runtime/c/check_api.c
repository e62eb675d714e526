/* Statuses of the public C API on the fake model (prefix kiln_, header fake.h): argument
 * checks, options checks, workspaces, and a correct run. Exits non-zero on any failed check. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fake.h"

static void fill(float x[6], int64_t k[4]) {
    for (int i = 0; i < 6; i++) x[i] = (float)i - 2.5f;
    for (int i = 0; i < 4; i++) k[i] = 10 * (i + 1);
}

static int outputs_ok(const float y[6], int64_t total) {
    float x[6];
    int64_t k[4];
    fill(x, k);
    for (int i = 0; i < 6; i++)
        if (y[i] != x[i] * 2.0f + (float)k[i % 4]) return 0;
    return total == 100;
}

static int has_error(const char *needle) {
    const char *msg = kiln_last_error();
    if (strstr(msg, needle) == NULL) {
        fprintf(stderr, "last_error is \"%s\", expected it to mention \"%s\"\n", msg, needle);
        return 0;
    }
    return 1;
}

static void check_queries(void) {
    kiln_tensor_info info;
    CHECK(kiln_abi_version() == KILN_ABI_VERSION);
    CHECK(strcmp(kiln_model_name(), "fake") == 0);
    CHECK(kiln_num_inputs() == KILN_NUM_INPUTS && kiln_num_outputs() == KILN_NUM_OUTPUTS);
    CHECK(kiln_workspace_size() == KILN_WORKSPACE_SIZE);
    CHECK(kiln_input_info(1, &info) == KILN_OK);
    CHECK(strcmp(info.name, "k") == 0 && info.dtype == KILN_DTYPE_INT64 && info.rank == 1);
    CHECK(info.shape[0] == 4 && info.nbytes == 32);
    CHECK(kiln_output_info(1, &info) == KILN_OK && info.rank == 0 && info.nbytes == 8);
    CHECK(kiln_input_info(2, &info) == KILN_INVALID_ARGUMENT && has_error("out of range"));
    CHECK(kiln_input_info(-1, &info) == KILN_INVALID_ARGUMENT);
    CHECK(kiln_output_info(2, &info) == KILN_INVALID_ARGUMENT && has_error("2 outputs"));
    CHECK(kiln_input_info(0, NULL) == KILN_INVALID_ARGUMENT && has_error("NULL"));
    CHECK(strcmp(kiln_status_string(KILN_OK), "ok") == 0);
    CHECK(strcmp(kiln_status_string(KILN_WORKSPACE_TOO_SMALL), "workspace too small") == 0);
    CHECK(strcmp(kiln_status_string((kiln_status)99), "unknown status") == 0);
}

static void check_create(void) {
    kiln_options o;
    kiln_session *s = (kiln_session *)&o; /* must be reset to NULL on failure */
    CHECK(kiln_session_create(NULL, NULL) == KILN_INVALID_ARGUMENT);

    kiln_options_init(&o);
    CHECK(o.abi_version == KILN_ABI_VERSION && o.num_threads == 0 && o.workspace == NULL);
    o.abi_version = 99;
    CHECK(kiln_session_create(&o, &s) == KILN_ABI_MISMATCH && s == NULL);
    CHECK(has_error("abi_version is 99"));

    kiln_options_init(&o);
    o.num_threads = 1 << 20;
    CHECK(kiln_session_create(&o, &s) == KILN_INVALID_ARGUMENT && has_error("num_threads"));

    kiln_options_init(&o);
    o.workspace_size = 4096;
    CHECK(kiln_session_create(&o, &s) == KILN_INVALID_ARGUMENT && has_error("workspace is NULL"));

    unsigned char *buf = aligned_alloc(64, 4096);
    kiln_options_init(&o);
    o.workspace = buf;
    o.workspace_size = 64;
    CHECK(kiln_session_create(&o, &s) == KILN_WORKSPACE_TOO_SMALL && has_error("needs 128"));
    o.workspace = buf + 8;
    o.workspace_size = 1024;
    CHECK(kiln_session_create(&o, &s) == KILN_INVALID_ARGUMENT && has_error("aligned"));
    free(buf);
}

static void check_run(int threads, int user_workspace) {
    kiln_options o;
    kiln_options_init(&o);
    o.num_threads = threads;
    unsigned char *ws = NULL;
    if (user_workspace) {
        ws = aligned_alloc(64, kiln_workspace_size());
        o.workspace = ws;
        o.workspace_size = kiln_workspace_size();
    }
    kiln_session *s = NULL;
    CHECK(kiln_session_create(&o, &s) == KILN_OK && s != NULL);
    if (s == NULL) return;

    float x[6], y[6];
    int64_t k[4], total = 0;
    fill(x, k);
    const void *in[] = {x, k};
    void *out[] = {y, &total};
    for (int rep = 0; rep < 100; rep++) {
        memset(y, 0, sizeof y);
        CHECK(kiln_session_run(s, in, out) == KILN_OK);
        CHECK(outputs_ok(y, total));
    }

    CHECK(kiln_session_run(NULL, in, out) == KILN_INVALID_ARGUMENT && has_error("live"));
    CHECK(kiln_session_run(s, NULL, out) == KILN_INVALID_ARGUMENT && has_error("inputs is NULL"));
    CHECK(kiln_session_run(s, in, NULL) == KILN_INVALID_ARGUMENT);
    const void *in_null[] = {x, NULL};
    CHECK(kiln_session_run(s, in_null, out) == KILN_INVALID_ARGUMENT && has_error("'k'"));
    _Alignas(8) char raw[64];
    const void *in_misaligned[] = {raw + 1, k};
    CHECK(kiln_session_run(s, in_misaligned, out) == KILN_INVALID_ARGUMENT &&
          has_error("not aligned"));

    /* something that is not a session: the magic check refuses it */
    _Alignas(64) unsigned char fake[256] = {0};
    CHECK(kiln_session_run((kiln_session *)fake, in, out) == KILN_INVALID_ARGUMENT);
    CHECK(kiln_session_destroy((kiln_session *)fake) == KILN_INVALID_ARGUMENT);

    CHECK(kiln_session_destroy(s) == KILN_OK);
    CHECK(kiln_session_destroy(NULL) == KILN_OK);
    free(ws);
}

int main(void) {
    check_queries();
    check_create();
    int thread_counts[] = {0, 1, 2, 3, 4, 7};
    for (int i = 0; i < 6; i++) {
        check_run(thread_counts[i], 0);
        check_run(thread_counts[i], 1);
    }
    kiln_session *s = NULL;
    CHECK(kiln_session_create(NULL, &s) == KILN_OK); /* NULL options: defaults */
    CHECK(kiln_session_destroy(s) == KILN_OK);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("check_api: all checks passed\n");
    return failures != 0;
}
