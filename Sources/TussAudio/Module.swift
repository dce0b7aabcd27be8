// TussAudio module.
