import TussPipeline

/// Opens `--masker`, or the default masker when it exists and a codec is loaded; nil otherwise.
func openMasker(_ path: String?, codec: CodecHandle?) throws -> MaskerHandle? {
    if let path { return try MaskerHandle.open(path) }
    guard codec != nil else { return nil }
    return try? MaskerHandle.openDefault()
}
