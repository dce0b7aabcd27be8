import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON header, then tensor bytes.
///
/// Header entries are `"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}` with offsets relative
/// to the byte after the header, plus an optional `"__metadata__"` object of string values.
public enum Safetensors {
    /// The largest header accepted, in bytes.
    static let maxHeaderLength = 100_000_000

    /// Loads a safetensors file, memory-mapped; tensor bytes are not copied.
    public static func load(_ path: String) throws -> WeightStore {
        let data = try MappedFile.map(path)
        return try load(data: data, source: path)
    }

    /// Parses safetensors bytes already in memory; `source` names them in error messages.
    public static func load(data: Data, source: String = "memory") throws -> WeightStore {
        func invalid(_ reason: String) -> WeightsError {
            WeightsError.invalidSafetensors(path: source, reason: reason)
        }
        let fileSize = data.count
        guard fileSize >= 8 else {
            throw invalid("the file has \(fileSize) bytes, fewer than the 8-byte header length")
        }
        let base = data.startIndex
        let headerLength64 = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength64 <= UInt64(maxHeaderLength) else {
            throw invalid("header length \(headerLength64) exceeds the \(maxHeaderLength)-byte limit")
        }
        let headerLength = Int(headerLength64)
        guard headerLength <= fileSize - 8 else {
            throw invalid("header length \(headerLength) runs past the end of the \(fileSize)-byte file")
        }
        let header = [UInt8](data[(base + 8)..<(base + 8 + headerLength)])
        guard header.first == UInt8(ascii: "{") else {
            throw invalid("the header does not start with '{'")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(header)
        } catch let error as WeightsError {
            if case let .invalidJSON(offset, reason) = error {
                throw invalid("header JSON error at byte \(offset): \(reason)")
            }
            throw error
        }
        guard case let .object(members) = json else {
            throw invalid("the header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataLength = fileSize - dataStart

        var store = WeightStore(source: source)
        var ranges: [(begin: Int, end: Int, name: String)] = []
        ranges.reserveCapacity(members.count)
        for member in members {
            let (name, value) = (member.key, member.value)
            if name == "__metadata__" {
                guard case let .object(entries) = value else {
                    throw invalid("__metadata__ is not an object")
                }
                for item in entries {
                    let (key, entry) = (item.key, item.value)
                    guard case let .string(text) = entry else {
                        throw invalid("__metadata__ value for '\(key)' is not a string")
                    }
                    store.metadata[key] = text
                }
                continue
            }
            guard case let .object(fields) = value else {
                throw invalid("entry '\(name)' is not an object")
            }
            var dtype: WeightDType?
            var shape: [Int]?
            var offsets: (Int, Int)?
            for item in fields {
                let (field, fieldValue) = (item.key, item.value)
                switch field {
                case "dtype":
                    guard case let .string(text) = fieldValue else { throw invalid("dtype of '\(name)' is not a string") }
                    guard let parsed = WeightDType(rawValue: text) else {
                        throw invalid("tensor '\(name)' has unsupported dtype '\(text)'")
                    }
                    dtype = parsed
                case "shape":
                    guard let dims = nonNegativeInts(fieldValue) else {
                        throw invalid("shape of '\(name)' is not a list of non-negative integers")
                    }
                    shape = dims
                case "data_offsets":
                    guard let pair = nonNegativeInts(fieldValue), pair.count == 2 else {
                        throw invalid("data_offsets of '\(name)' is not two non-negative integers")
                    }
                    offsets = (pair[0], pair[1])
                default:
                    throw invalid("entry '\(name)' has unknown field '\(field)'")
                }
            }
            guard let dtype, let shape, let (begin, end) = offsets else {
                throw invalid("entry '\(name)' lacks dtype, shape or data_offsets")
            }
            guard begin <= end, end <= dataLength else {
                throw invalid("data_offsets [\(begin), \(end)] of '\(name)' are outside the \(dataLength)-byte data section")
            }
            guard let count = WeightTensor.elementCount(of: shape) else {
                throw invalid("shape \(shape) of '\(name)' has too many elements")
            }
            let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, byteCount == end - begin else {
                throw invalid("tensor '\(name)' (\(dtype.rawValue) \(shape)) spans \(end - begin) bytes instead of \(overflow ? "too many" : String(byteCount))")
            }
            let bytes = data[(base + dataStart + begin)..<(base + dataStart + end)]
            store.append(name, WeightTensor(unchecked: dtype, shape: shape, count: count, storage: bytes))
            if begin < end {
                ranges.append((begin: begin, end: end, name: name))
            }
        }
        ranges.sort { $0.begin < $1.begin }
        for i in ranges.indices.dropFirst() where ranges[i].begin < ranges[i - 1].end {
            throw invalid("tensors '\(ranges[i - 1].name)' and '\(ranges[i].name)' overlap")
        }
        return store
    }

    /// The elements of a JSON array of non-negative integers, or nil.
    private static func nonNegativeInts(_ value: JSONValue) -> [Int]? {
        guard case let .array(elements) = value else { return nil }
        var result: [Int] = []
        result.reserveCapacity(elements.count)
        for element in elements {
            guard case let .int(number) = element, number >= 0, let int = Int(exactly: number) else { return nil }
            result.append(int)
        }
        return result
    }

    /// The header bytes for `tensors` (in order) and `metadata` (keys sorted), padded with spaces to a multiple of 8.
    static func header(for tensors: [(name: String, tensor: WeightTensor)], metadata: [String: String]) throws -> [UInt8] {
        var seen = Set<String>()
        var parts: [String] = []
        if !metadata.isEmpty {
            let entries = metadata.keys.sorted().map { key in
                JSONText.quoted(key) + ":" + JSONText.quoted(metadata[key] ?? "")
            }
            parts.append("\"__metadata__\":{" + entries.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, tensor) in tensors {
            guard name != "__metadata__" else {
                throw WeightsError.invalidArgument(reason: "'__metadata__' is reserved in safetensors; rename that tensor")
            }
            guard seen.insert(name).inserted else {
                throw WeightsError.invalidArgument(reason: "duplicate tensor name '\(name)'; give each tensor a unique name")
            }
            let end = offset + tensor.byteCount
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append(JSONText.quoted(name) + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while bytes.count % 8 != 0 {
            bytes.append(UInt8(ascii: " "))
        }
        guard bytes.count <= maxHeaderLength else {
            throw WeightsError.invalidArgument(reason: "the safetensors header would exceed \(maxHeaderLength) bytes; use shorter names or fewer tensors")
        }
        return bytes
    }

    /// Writes tensors (in the given order) and string metadata as a safetensors file, atomically.
    ///
    /// The bytes go to a temporary file in the same directory, which is flushed and then renamed over `path`.
    public static func write(_ tensors: [(name: String, tensor: WeightTensor)], metadata: [String: String], to path: String) throws {
        let header = try header(for: tensors, metadata: metadata)
        let directory = (path as NSString).deletingLastPathComponent
        let baseName = (path as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(baseName).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw WeightsError.unwritableFile(path: path, reason: MappedFile.systemError())
        }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        var length = UInt64(header.count).littleEndian
        try withUnsafeBytes(of: &length) { try writeAll(fd, $0, path: path) }
        try header.withUnsafeBytes { try writeAll(fd, $0, path: path) }
        for (_, tensor) in tensors {
            try tensor.withUnsafeBytes { try writeAll(fd, $0, path: path) }
        }
        guard fsync(fd) == 0 else {
            throw WeightsError.unwritableFile(path: path, reason: "fsync failed: \(MappedFile.systemError())")
        }
        closed = true
        guard close(fd) == 0 else {
            throw WeightsError.unwritableFile(path: path, reason: "close failed: \(MappedFile.systemError())")
        }
        guard rename(temporary, path) == 0 else {
            throw WeightsError.unwritableFile(path: path, reason: "rename failed: \(MappedFile.systemError())")
        }
        renamed = true
    }
}

/// Writes every byte of `buffer`, retrying short writes and interruptions.
private func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
    guard var pointer = buffer.baseAddress else { return }
    var remaining = buffer.count
    while remaining > 0 {
        let written = write(fd, pointer, remaining)
        if written < 0 {
            if errno == EINTR { continue }
            throw WeightsError.unwritableFile(path: path, reason: MappedFile.systemError())
        }
        pointer += written
        remaining -= written
    }
}
