// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<opus.h>)
#include <opus.h>
#elif __has_include(<opus/opus.h>)
#include <opus/opus.h>
#else
#error "opus.h not found: install the Debian package libopus-dev (apt-get install libopus-dev)"
#endif
#if __has_include(<ogg/ogg.h>)
#include <ogg/ogg.h>
#else
#error "ogg/ogg.h not found: install the Debian package libogg-dev (apt-get install libogg-dev)"
#endif
