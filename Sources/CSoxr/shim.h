// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<soxr.h>)
#include <soxr.h>
#else
#error "soxr.h not found: install the Debian package libsoxr-dev (apt-get install libsoxr-dev)"
#endif
