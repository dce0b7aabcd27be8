import Foundation
import TussWeights
import XCTest

/// Little-endian byte appending.
extension Array where Element == UInt8 {
    mutating func le16(_ value: Int) { append(contentsOf: [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF)]) }
    mutating func le32(_ value: UInt32) { for i in 0..<4 { append(UInt8((value >> (8 * UInt32(i))) & 0xFF)) } }
    mutating func le64(_ value: UInt64) { for i in 0..<8 { append(UInt8((value >> (8 * UInt64(i))) & 0xFF)) } }

    func le32(at offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[offset + $1]) << (8 * UInt32($1)) } }
    func le16(at offset: Int) -> Int { Int(self[offset]) | Int(self[offset + 1]) << 8 }
}

/// CRC-32 lookup table for the test zip writer (written separately from the library's).
private let crcTable: [UInt32] = (0..<256).map { (n: Int) -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c >> 1) ^ (0xEDB8_8320 & (0 &- (c & 1))) }
    return c
}

/// CRC-32 (zip's polynomial).
func testCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
    }
    return ~crc
}

/// A minimal zip toolkit for tests: reads the entries of a well-formed archive and writes stored archives.
enum TestZip {
    /// The entries (name, contents) of a valid archive without ZIP64 records.
    static func entries(of archive: [UInt8]) -> [(name: String, data: [UInt8])] {
        var eocd = archive.count - 22
        while archive.le32(at: eocd) != 0x0605_4B50 { eocd -= 1 }
        let count = archive.le16(at: eocd + 10)
        var p = Int(archive.le32(at: eocd + 16))
        var result: [(name: String, data: [UInt8])] = []
        for _ in 0..<count {
            let size = Int(archive.le32(at: p + 24))
            let nameLength = archive.le16(at: p + 28)
            let next = p + 46 + nameLength + archive.le16(at: p + 30) + archive.le16(at: p + 32)
            let name = String(decoding: archive[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            let local = Int(archive.le32(at: p + 42))
            let start = local + 30 + archive.le16(at: local + 26) + archive.le16(at: local + 28)
            result.append((name: name, data: Array(archive[start..<(start + size)])))
            p = next
        }
        return result
    }

    /// A stored archive whose entry contents start on 64-byte boundaries (like torch.save), optionally with ZIP64
    /// records and extra fields everywhere (as writers do for archives over 4 GB).
    static func archive(_ entries: [(name: String, data: [UInt8])], zip64: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var offsets: [Int] = []
        for (name, data) in entries {
            offsets.append(out.count)
            let nameBytes = Array(name.utf8)
            let unpadded = out.count + 30 + nameBytes.count + 4
            let padding = (64 - unpadded % 64) % 64
            out.le32(0x0403_4B50)
            out.le16(20); out.le16(0); out.le16(0); out.le16(0); out.le16(0)
            out.le32(testCRC32(data)); out.le32(UInt32(data.count)); out.le32(UInt32(data.count))
            out.le16(nameBytes.count); out.le16(4 + padding)
            out.append(contentsOf: nameBytes)
            out.le16(0x4246); out.le16(padding)  // "FB" padding field, as PyTorch writes
            out.append(contentsOf: [UInt8](repeating: 0x5A, count: padding))
            out.append(contentsOf: data)
        }
        let directoryStart = out.count
        for (index, (name, data)) in entries.enumerated() {
            let nameBytes = Array(name.utf8)
            out.le32(0x0201_4B50)
            out.le16(zip64 ? 45 : 20); out.le16(zip64 ? 45 : 20); out.le16(0); out.le16(0); out.le16(0); out.le16(0)
            out.le32(testCRC32(data))
            out.le32(zip64 ? 0xFFFF_FFFF : UInt32(data.count)); out.le32(zip64 ? 0xFFFF_FFFF : UInt32(data.count))
            out.le16(nameBytes.count); out.le16(zip64 ? 28 : 0); out.le16(0); out.le16(0); out.le16(0); out.le32(0)
            out.le32(zip64 ? 0xFFFF_FFFF : UInt32(offsets[index]))
            out.append(contentsOf: nameBytes)
            if zip64 {
                out.le16(0x0001); out.le16(24)
                out.le64(UInt64(data.count)); out.le64(UInt64(data.count)); out.le64(UInt64(offsets[index]))
            }
        }
        let directoryEnd = out.count
        if zip64 {
            out.le32(0x0606_4B50); out.le64(44); out.le16(45); out.le16(45); out.le32(0); out.le32(0)
            out.le64(UInt64(entries.count)); out.le64(UInt64(entries.count))
            out.le64(UInt64(directoryEnd - directoryStart)); out.le64(UInt64(directoryStart))
            out.le32(0x0706_4B50); out.le32(0); out.le64(UInt64(directoryEnd)); out.le32(1)
        }
        out.le32(0x0605_4B50); out.le16(0); out.le16(0)
        out.le16(zip64 ? 0xFFFF : entries.count); out.le16(zip64 ? 0xFFFF : entries.count)
        out.le32(zip64 ? 0xFFFF_FFFF : UInt32(directoryEnd - directoryStart))
        out.le32(zip64 ? 0xFFFF_FFFF : UInt32(directoryStart))
        out.le16(0)
        return out
    }
}

/// Emits pickle opcodes the way Python's pickler does for torch.save objects.
struct PickleWriter {
    var bytes: [UInt8] = [0x80, 0x02]

    mutating func op(_ code: UInt8) { bytes.append(code) }
    mutating func mark() { op(0x28) }
    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        op(0x58); bytes.le32(UInt32(utf8.count)); bytes.append(contentsOf: utf8)
    }
    mutating func int(_ value: Int) {
        if (0..<256).contains(value) {
            op(0x4B); bytes.append(UInt8(value))
        } else if let small = Int32(exactly: value) {
            op(0x4A); bytes.le32(UInt32(bitPattern: small))
        } else {
            op(0x8A); bytes.append(8); bytes.le64(UInt64(bitPattern: Int64(value)))  // LONG1, 8 bytes
        }
    }
    mutating func global(_ module: String, _ name: String) {
        op(0x63); bytes.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }
    mutating func tuple(_ ints: [Int]) {
        mark(); for value in ints { int(value) }; op(0x74)
    }
    /// `_rebuild_tensor_v2(('storage', torch.<storageType>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`.
    mutating func tensor(storageType: String, key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); string("storage"); global("torch", storageType); string(key); string("cpu"); int(numel); op(0x74)
        op(0x51)  // BINPERSID
        int(offset); tuple(size); tuple(stride)
        op(0x89)  // NEWFALSE
        global("collections", "OrderedDict"); op(0x29); op(0x52)
        op(0x74)
        op(0x52)  // REDUCE
    }
    mutating func stop() { op(0x2E) }
}

/// A checkpoint archive around `pickle` with the given storages under `archive/data/<key>`.
func checkpoint(_ pickle: [UInt8], storages: [(key: String, bytes: [UInt8])] = [], byteOrder: String? = "little") -> Data {
    var entries: [(name: String, data: [UInt8])] = [(name: "archive/data.pkl", data: pickle)]
    if let byteOrder { entries.append((name: "archive/byteorder", data: Array(byteOrder.utf8))) }
    for (key, bytes) in storages { entries.append((name: "archive/data/\(key)", data: bytes)) }
    entries.append((name: "archive/version", data: Array("3\n".utf8)))
    return Data(TestZip.archive(entries))
}

/// Little-endian float32 bytes.
func floatBytes(_ values: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for value in values { out.le32(value.bitPattern) }
    return out
}

/// A checkpoint built here (no PyTorch): `{"w": f32 (2, 3), "b": i64 (2,), "sub": {"h": f16 (2,)}}`, optionally ZIP64.
func builtCheckpoint(zip64: Bool = false) -> [UInt8] {
    var pickle = PickleWriter()
    pickle.op(0x7D)  // EMPTY_DICT
    pickle.mark()
    pickle.string("w"); pickle.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 0, size: [2, 3], stride: [3, 1])
    pickle.string("b"); pickle.tensor(storageType: "LongStorage", key: "1", numel: 2, offset: 0, size: [2], stride: [1])
    pickle.string("sub"); pickle.op(0x7D); pickle.string("h")
    pickle.tensor(storageType: "HalfStorage", key: "2", numel: 2, offset: 0, size: [2], stride: [1])
    pickle.op(0x73)  // SETITEM
    pickle.op(0x75)  // SETITEMS
    pickle.stop()
    var floats: [UInt8] = []
    for value: Float in [1, 2, 3, -4, 0.5, 6] { floats.le32(value.bitPattern) }
    var longs: [UInt8] = []
    longs.le64(UInt64(bitPattern: -9)); longs.le64(1 << 40)
    let halves: [UInt8] = [0x00, 0x3C, 0x00, 0xC0]  // 1.0, -2.0
    return TestZip.archive([
        (name: "built/data.pkl", data: pickle.bytes),
        (name: "built/byteorder", data: Array("little".utf8)),
        (name: "built/data/0", data: floats),
        (name: "built/data/1", data: longs),
        (name: "built/data/2", data: halves),
        (name: "built/version", data: Array("3\n".utf8)),
    ], zip64: zip64)
}

/// Calls `floats()` on every tensor inside a value (touching every byte a loader handed out).
func touchTensors(_ value: PickleValue) throws {
    switch value {
    case let .tensor(tensor): _ = try tensor.floats()
    case let .list(values), let .tuple(values): for v in values { try touchTensors(v) }
    case let .dict(entries): for (k, v) in entries { try touchTensors(k); try touchTensors(v) }
    default: break
    }
}

/// The bits of each float, for exact comparisons that also distinguish -0 and NaN payloads.
func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }
