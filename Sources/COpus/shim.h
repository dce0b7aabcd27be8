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

#if __has_include(<opus.h>) || __has_include(<opus/opus.h>)
// opus_encoder_ctl is variadic, which Swift cannot call; these fixed-argument wrappers forward an integer request.
static inline int tuss_opus_encoder_set_int(OpusEncoder *encoder, int request, opus_int32 value) {
    return opus_encoder_ctl(encoder, request, value);
}
static inline int tuss_opus_encoder_get_int(OpusEncoder *encoder, int request, opus_int32 *value) {
    return opus_encoder_ctl(encoder, request, value);
}
#endif
