/* Two models linked into one program under different symbol prefixes (a_ and b_), with both
 * public headers included in one translation unit. Exits non-zero on any failed check. */
#include <string.h>

#include "a.h"
#include "b.h"
#include "check.h"

int main(void) {
    kiln_session *sa = NULL, *sb = NULL;
    kiln_options o;
    a_options_init(&o);
    o.num_threads = 2;
    CHECK(a_session_create(&o, &sa) == KILN_OK);
    CHECK(b_session_create(NULL, &sb) == KILN_OK);
    CHECK(A_NUM_INPUTS == 2 && B_NUM_OUTPUTS == 2);

    float xa[6] = {1, 2, 3, 4, 5, 6}, xb[6] = {-1, -2, -3, -4, -5, -6}, ya[6], yb[6];
    int64_t k[4] = {1, 2, 3, 4}, ta = 0, tb = 0;
    const void *ina[] = {xa, k}, *inb[] = {xb, k};
    void *outa[] = {ya, &ta}, *outb[] = {yb, &tb};
    CHECK(a_session_run(sa, ina, outa) == KILN_OK);
    CHECK(b_session_run(sb, inb, outb) == KILN_OK);
    for (int i = 0; i < 6; i++) {
        CHECK(ya[i] == 2 * xa[i] + (float)k[i % 4]);
        CHECK(yb[i] == 2 * xb[i] + (float)k[i % 4]);
    }
    CHECK(ta == 10 && tb == 10);

    /* a session belongs to the library that made it */
    CHECK(b_session_run(sa, inb, outb) == KILN_INVALID_ARGUMENT);
    CHECK(strstr(b_last_error(), "another model") != NULL);
    CHECK(a_last_error()[0] == '\0'); /* each library keeps its own error text */

    CHECK(a_session_destroy(sa) == KILN_OK && b_session_destroy(sb) == KILN_OK);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("two_models: all checks passed\n");
    return failures != 0;
}
