// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<sndfile.h>)
#include <sndfile.h>
#else
#error "sndfile.h not found: install the Debian package libsndfile1-dev (apt-get install libsndfile1-dev)"
#endif
