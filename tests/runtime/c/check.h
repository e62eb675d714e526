/* A tiny check macro for the runtime's C test programs: report and count, never stop. */
#ifndef KILN_TEST_CHECK_H
#define KILN_TEST_CHECK_H
#include <stdio.h>

static int failures;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                         \
        }                                                                       \
    } while (0)

#endif
