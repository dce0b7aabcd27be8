import Foundation

/// What went wrong reading, parsing or writing a codes file; each message is one line: what, where, what to do.
///
/// Byte offsets count from the first byte of the file or stream. Chunk numbers count chunks in stream order from 0;
/// the end-of-stream marker is numbered like the chunk it stands in place of.
public enum CodesFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input has no bytes at all.
    case emptyFile
    /// The input does not start with the magic `TUSSCODE`; `found` is its first bytes (up to 8).
    case notACodesFile(found: [UInt8])
    /// The format version (at byte 8) is not one this code reads.
    case unsupportedVersion(found: Int, supported: Int)
    /// The input ended at byte `offset` before the end-of-stream marker; `chunk` is nil inside the header.
    case truncated(offset: Int, chunk: Int?)
    /// The header's CRC32 (stored at byte `offset`) does not match its bytes.
    case headerChecksumMismatch(offset: Int, stored: UInt32, computed: UInt32)
    /// The CRC32 of chunk `chunk` (starting at byte `offset`) does not match its bytes.
    case chunkChecksumMismatch(chunk: Int, offset: Int, stored: UInt32, computed: UInt32)
    /// A header field at byte `offset` has a value outside what the format allows.
    case malformedHeader(field: String, offset: Int, reason: String)
    /// Chunk `chunk` is damaged or inconsistent at byte `offset` (bad marker, lengths, codes, padding, channel).
    case malformedChunk(chunk: Int, offset: Int, reason: String)
    /// Chunk `chunk` at byte `offset` is intact but not the chunk that comes next (index, channel order, frames).
    case chunkOutOfSequence(chunk: Int, offset: Int, reason: String)
    /// Bytes follow the end-of-stream marker, starting at byte `offset`.
    case trailingData(offset: Int)
    /// The codes were made with codec `file`; the caller's codec `expected` differs.
    case codecMismatch(file: CodecIdentity, expected: CodecIdentity)
    /// A header given to a writer or to `CodesFraming` breaks a format limit.
    case invalidHeader(field: String, reason: String)
    /// A chunk given to a writer or to `CodesFraming` breaks a format rule; `chunk` is its stream position.
    case invalidChunk(chunk: Int, reason: String)
    /// `finish()` was called before the stream was complete.
    case incompleteStream(reason: String)
    /// The writer was used after `finish()` or after an output failure.
    case writerClosed
    /// A file system call failed.
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .emptyFile:
            return "codes file is empty (0 bytes): nothing was written; re-encode the audio to make a codes file"
        case .notACodesFile(let found):
            return "not a codes file: it starts with \(codesHex(found)) (\(codesASCII(found))) instead of the magic "
                + "'TUSSCODE': pass a .bin written by CodesWriter"
        case .unsupportedVersion(let found, let supported):
            return "codes file format version \(found) (at byte 8) is not supported; this reader supports version "
                + "\(supported): re-encode with this version of tuss-codec or use the version that wrote it"
        case .truncated(let offset, let chunk):
            let place = chunk.map { "in chunk \($0)" } ?? "in the header"
            return "codes stream truncated at byte \(offset) \(place): it ended before the end-of-stream marker; "
                + "re-copy the file, or make sure the writer's finish() ran"
        case .headerChecksumMismatch(let offset, let stored, let computed):
            return "codes header CRC mismatch (stored \(codesHex32(stored)) at byte \(offset), computed "
                + "\(codesHex32(computed))): the header is damaged; re-copy or re-encode the file"
        case .chunkChecksumMismatch(let chunk, let offset, let stored, let computed):
            return "chunk \(chunk) at byte \(offset) fails its CRC check (stored \(codesHex32(stored)), computed "
                + "\(codesHex32(computed))): the chunk is damaged; re-copy or re-encode the file"
        case .malformedHeader(let field, let offset, let reason):
            return "malformed codes header: \(field) at byte \(offset) \(reason); the file is damaged or was not "
                + "written by CodesWriter"
        case .malformedChunk(let chunk, let offset, let reason):
            return "malformed chunk \(chunk) at byte \(offset): \(reason); the file is damaged or was not written "
                + "by CodesWriter"
        case .chunkOutOfSequence(let chunk, let offset, let reason):
            return "chunk \(chunk) at byte \(offset) is out of sequence: \(reason); chunks were reordered, "
                + "duplicated or dropped, so re-encode or re-copy the file"
        case .trailingData(let offset):
            return "unexpected bytes after the end-of-stream marker, from byte \(offset): something was appended "
                + "to the codes file; truncate it at byte \(offset) or re-encode"
        case .codecMismatch(let file, let expected):
            return "codes were made with codec \(codesQuoted(file.name)) (hash \(codesHashPrefix(file.weightsHash))); "
                + "this codec is \(codesQuoted(expected.name)) (hash \(codesHashPrefix(expected.weightsHash))): "
                + "decode with the codec that encoded them"
        case .invalidHeader(let field, let reason):
            return "cannot write codes header: \(field) \(reason); fix the header before writing"
        case .invalidChunk(let chunk, let reason):
            return "cannot write chunk \(chunk): \(reason); fix the chunk and write it again"
        case .incompleteStream(let reason):
            return "cannot finish codes stream: \(reason); write the missing chunks, then call finish() again"
        case .writerClosed:
            return "codes writer is already finished or failed earlier: create a new CodesWriter"
        case .io(let path, let reason):
            return "codes file I/O failed for \(codesQuoted(path)): \(reason); check the path, permissions and "
                + "free space"
        }
    }
}

/// Bytes as space-separated hex, e.g. `52 49 46 46`.
func codesHex(_ bytes: [UInt8]) -> String {
    bytes.map { codesHexByte($0) }.joined(separator: " ")
}

/// One byte as two lowercase hex digits.
func codesHexByte(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}

/// A 32-bit value as `0x` and eight hex digits.
func codesHex32(_ value: UInt32) -> String {
    "0x" + (0..<4).reversed().map { codesHexByte(UInt8(truncatingIfNeeded: value >> (8 * $0))) }.joined()
}

/// Bytes shown as quoted ASCII with `.` for anything not printable.
func codesASCII(_ bytes: [UInt8]) -> String {
    "\"" + String(bytes.map { (0x20..<0x7F).contains($0) ? Character(UnicodeScalar($0)) : "." }) + "\""
}

/// The first six bytes of a digest in hex followed by an ellipsis (or the whole thing when shorter).
func codesHashPrefix(_ hash: [UInt8]) -> String {
    hash.isEmpty ? "none" : hash.prefix(6).map { codesHexByte($0) }.joined() + (hash.count > 6 ? "…" : "")
}

/// A string in single quotes with control characters escaped, so messages stay on one line.
func codesQuoted(_ text: String) -> String {
    var out = "'"
    for scalar in text.unicodeScalars {
        if scalar.properties.generalCategory == .control {
            out += scalar.escaped(asASCII: true)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out + "'"
}
