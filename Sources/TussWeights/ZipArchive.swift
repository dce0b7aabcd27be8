import Foundation

/// A read-only view of a ZIP archive whose entries are stored uncompressed, as `torch.save` writes them.
///
/// Only the end-of-central-directory records (including ZIP64), the central directory and each entry's local
/// header are read; entry contents are slices of the archive bytes, never copies.
struct ZipArchive {
    /// One stored file.
    struct Entry {
        let name: String
        /// Absolute offset of the first content byte (after the local header, its name and extra field).
        let dataOffset: Int
        let size: Int
        let crc32: UInt32
    }

    /// Entries in central-directory order.
    let entries: [Entry]
    private let indexByName: [String: Int]
    private let data: Data

    /// The most entries accepted.
    static let maxEntries = 1 << 20

    /// Reads the directory of `data`; `source` names it in error messages.
    init(data: Data, source: String) throws {
        self.data = data
        let entries = try data.withUnsafeBytes { raw in
            try ZipArchive.readDirectory(ByteView(raw), source: source)
        }
        var index: [String: Int] = [:]
        for (i, entry) in entries.enumerated() {
            guard index.updateValue(i, forKey: entry.name) == nil else {
                throw WeightsError.invalidCheckpoint(path: source, reason: "zip entry '\(entry.name)' appears twice")
            }
        }
        self.entries = entries
        self.indexByName = index
    }

    /// The entry with this exact name.
    func entry(named name: String) -> Entry? {
        indexByName[name].map { entries[$0] }
    }

    /// The contents of `entry`, sharing the archive's bytes.
    func contents(of entry: Entry) -> Data {
        let start = data.startIndex + entry.dataOffset
        return data[start..<(start + entry.size)]
    }

    private static func readDirectory(_ bytes: ByteView, source: String) throws -> [Entry] {
        func invalid(_ reason: String) -> WeightsError {
            WeightsError.invalidCheckpoint(path: source, reason: reason)
        }
        let size = bytes.count
        guard size >= 22 else { throw invalid("the file is too short to be a zip archive") }

        // End of central directory: 22 bytes plus a comment of up to 65535 bytes at the end of the file.
        var eocd = -1
        var candidate = size - 22
        let lowest = max(0, size - 22 - 0xFFFF)
        while candidate >= lowest {
            if bytes.u32(candidate) == 0x0605_4B50, candidate + 22 + Int(bytes.u16(candidate + 20)) <= size {
                eocd = candidate
                break
            }
            candidate -= 1
        }
        guard eocd >= 0 else { throw invalid("no zip end-of-central-directory record (not a zip file)") }
        var entryCount = UInt64(bytes.u16(eocd + 10))
        var directorySize = UInt64(bytes.u32(eocd + 12))
        var directoryOffset = UInt64(bytes.u32(eocd + 16))

        // ZIP64: a locator just before the classic record points at the 64-bit record.
        if eocd >= 20, bytes.u32(eocd - 20) == 0x0706_4B50 {
            let record = bytes.u64(eocd - 20 + 8)
            guard size >= 56, record <= UInt64(size - 56), bytes.u32(Int(record)) == 0x0606_4B50 else {
                throw invalid("the ZIP64 end-of-central-directory locator points outside the file")
            }
            let r = Int(record)
            entryCount = bytes.u64(r + 32)
            directorySize = bytes.u64(r + 40)
            directoryOffset = bytes.u64(r + 48)
        } else if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw invalid("the archive needs ZIP64 records but has none")
        }
        guard directoryOffset <= UInt64(size), directorySize <= UInt64(size) - directoryOffset else {
            throw invalid("the central directory lies outside the file")
        }
        guard entryCount <= UInt64(maxEntries), entryCount <= directorySize / 46 else {
            throw invalid("the central directory claims \(entryCount) entries in \(directorySize) bytes")
        }
        let directoryEnd = Int(directoryOffset + directorySize)

        var entries: [Entry] = []
        entries.reserveCapacity(Int(entryCount))
        var p = Int(directoryOffset)
        for _ in 0..<Int(entryCount) {
            guard directoryEnd - p >= 46, bytes.u32(p) == 0x0201_4B50 else {
                throw invalid("central directory entry \(entries.count) is truncated or has a bad signature")
            }
            let flags = bytes.u16(p + 8)
            let method = bytes.u16(p + 10)
            let crc = bytes.u32(p + 16)
            var compressedSize = UInt64(bytes.u32(p + 20))
            var uncompressedSize = UInt64(bytes.u32(p + 24))
            let nameLength = Int(bytes.u16(p + 28))
            let extraLength = Int(bytes.u16(p + 30))
            let commentLength = Int(bytes.u16(p + 32))
            var localOffset = UInt64(bytes.u32(p + 42))
            let nameStart = p + 46
            let extraStart = nameStart + nameLength
            let next = extraStart + extraLength + commentLength
            guard next <= directoryEnd else {
                throw invalid("central directory entry \(entries.count) runs past the directory")
            }
            let name = String(decoding: bytes.slice(nameStart, nameLength), as: UTF8.self)

            // ZIP64 extended information: present only for the fields saturated above, in this order.
            var e = extraStart
            let extraEnd = extraStart + extraLength
            while extraEnd - e >= 4 {
                let id = bytes.u16(e)
                let length = Int(bytes.u16(e + 2))
                let body = e + 4
                guard extraEnd - body >= length else { throw invalid("entry '\(name)' has a truncated extra field") }
                if id == 0x0001 {
                    var q = body
                    func next64() throws -> UInt64 {
                        guard body + length - q >= 8 else { throw invalid("entry '\(name)' has a short ZIP64 extra field") }
                        defer { q += 8 }
                        return bytes.u64(q)
                    }
                    if uncompressedSize == 0xFFFF_FFFF { uncompressedSize = try next64() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next64() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next64() }
                }
                e = body + length
            }

            guard flags & 0x0001 == 0 else { throw invalid("entry '\(name)' is encrypted") }
            guard method == 0 else {
                throw invalid("entry '\(name)' is compressed (method \(method)); torch.save stores entries uncompressed")
            }
            guard compressedSize == uncompressedSize else {
                throw invalid("stored entry '\(name)' has different compressed and uncompressed sizes")
            }
            guard size >= 30, localOffset <= UInt64(size - 30) else { throw invalid("entry '\(name)' has its local header outside the file") }
            let local = Int(localOffset)
            guard bytes.u32(local) == 0x0403_4B50 else { throw invalid("entry '\(name)' has a bad local header signature") }
            let dataOffset = local + 30 + Int(bytes.u16(local + 26)) + Int(bytes.u16(local + 28))
            guard dataOffset <= size, uncompressedSize <= UInt64(size - dataOffset) else {
                throw invalid("entry '\(name)' runs past the end of the file")
            }
            entries.append(Entry(name: name, dataOffset: dataOffset, size: Int(uncompressedSize), crc32: crc))
            p = next
        }
        return entries
    }
}

/// Bounds-unchecked little-endian reads from a raw buffer; every caller checks offsets first.
struct ByteView {
    let raw: UnsafeRawBufferPointer

    init(_ raw: UnsafeRawBufferPointer) {
        self.raw = raw
    }

    var count: Int { raw.count }

    func u16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func u32(_ offset: Int) -> UInt32 {
        UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func u64(_ offset: Int) -> UInt64 {
        UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    func slice(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + length)])
    }
}

/// CRC-32 (IEEE 802.3, as in zip).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 {
            c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1
        }
        return c
    }

    /// The checksum of `bytes`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for byte in bytes {
                crc = t[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
            }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
