import Foundation
import TussTestSupport
import TussWeights
import XCTest

/// Builds a safetensors file by hand: the JSON header text as given (no padding), then the data bytes.
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let headerBytes = Array(header.utf8)
    var out: [UInt8] = []
    out.le64(UInt64(headerBytes.count))
    return out + headerBytes + data
}

final class SafetensorsTests: XCTestCase {
    func testRoundTripFloat32AndMetadata() throws {
        let directory = try temporaryDirectory(self, prefix: "tuss-weights-tests")
        let path = directory + "/model.safetensors"
        let tensors: [(name: String, tensor: WeightTensor)] = [
            ("encoder.weight", WeightTensor(floats: [1, -2.5, .pi, -0.0, .infinity, .leastNormalMagnitude / 4], shape: [2, 3])),
            ("scalar", WeightTensor(floats: [42], shape: [])),
            ("empty", WeightTensor(floats: [], shape: [0, 4])),
            ("a \"quoted\" name/é", WeightTensor(floats: [Float.greatestFiniteMagnitude, -Float.leastNonzeroMagnitude], shape: [2])),
        ]
        let metadata = ["tuss-codec.kind": "tuss", "config": "{\"a\": [1, 2]}", "unicode": "ü\n\t\u{1}"]
        try Safetensors.write(tensors, metadata: metadata, to: path)

        let store = try Safetensors.load(path)
        XCTAssertEqual(store.names, tensors.map(\.name))
        XCTAssertEqual(store.metadata, metadata)
        for (name, tensor) in tensors {
            let loaded = try store.require(name)
            XCTAssertEqual(loaded.dtype, .f32)
            XCTAssertEqual(loaded.shape, tensor.shape)
            XCTAssertEqual(bits(try loaded.floats()), bits(try tensor.floats()), name)
            XCTAssertEqual(loaded, tensor)
        }
        XCTAssertEqual(try store.require("scalar").count, 1)
        XCTAssertEqual(try store.require("empty").count, 0)

        // Layout: header length is a multiple of 8, padded with spaces, data follows directly.
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = Int(raw[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        XCTAssertEqual((8 + headerLength) % 8, 0)
        XCTAssertEqual(raw.count, 8 + headerLength + (6 + 1 + 0 + 2) * 4)
        let headerBytes = raw[8..<(8 + headerLength)]
        let closing = try XCTUnwrap(headerBytes.lastIndex(of: UInt8(ascii: "}")))
        XCTAssertTrue(headerBytes[(closing + 1)...].allSatisfy { $0 == UInt8(ascii: " ") })
        XCTAssertLessThan(headerBytes.count - (closing - headerBytes.startIndex + 1), 8)
        // No temporary file is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["model.safetensors"])
    }

    func testRoundTripOtherDTypesAndOverwrite() throws {
        let directory = try temporaryDirectory(self, prefix: "tuss-weights-tests")
        let path = directory + "/x.safetensors"
        try Safetensors.write([("old", WeightTensor(floats: [1], shape: [1]))], metadata: [:], to: path)
        let half = try WeightTensor(dtype: .f16, shape: [3], bytes: Data([0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00]))  // odd offsets next
        let codes = try WeightTensor(dtype: .i32, shape: [2], bytes: Data([0xFF, 0xFF, 0xFF, 0xFF, 0x05, 0x00, 0x00, 0x00]))
        try Safetensors.write([("h", half), ("codes", codes)], metadata: [:], to: path)
        let store = try Safetensors.load(path)
        XCTAssertEqual(store.names, ["h", "codes"])
        XCTAssertEqual(store.metadata, [:])
        XCTAssertNil(store["old"])
        XCTAssertEqual(try store.require("codes").int64s(), [-1, 5])  // read from an offset that is not 4-aligned
        XCTAssertEqual(try store.require("h").floats(), [1, -2, 0x1p-24])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["x.safetensors"])
    }

    func testWriteRejectsBadNamesAndUnwritablePaths() throws {
        let t = WeightTensor(floats: [1], shape: [1])
        let directory = try temporaryDirectory(self, prefix: "tuss-weights-tests")
        XCTAssertThrowsError(try Safetensors.write([("a", t), ("a", t)], metadata: [:], to: directory + "/d.safetensors")) {
            guard case .invalidArgument = $0 as? WeightsError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try Safetensors.write([("__metadata__", t)], metadata: [:], to: directory + "/m.safetensors"))
        XCTAssertThrowsError(try Safetensors.write([("a", t)], metadata: [:], to: directory + "/missing/dir/x.safetensors")) {
            guard case .unwritableFile = $0 as? WeightsError else { return XCTFail("\($0)") }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }

    /// Known bit patterns, decoded independently of the implementation.
    func testHandBuiltFileDecodesEveryDType() throws {
        var data: [UInt8] = []
        // F16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), -0.0, +inf, 2^-14 (smallest normal)
        for h: UInt16 in [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x0400] { data.le16(Int(h)) }  // 14 bytes
        // BF16: 1.0, -3.5, 0 (bf16 is the top half of a float32)
        for h: UInt16 in [0x3F80, 0xC060, 0x0000] { data.le16(Int(h)) }  // 6 bytes -> 20
        for v: Int32 in [-1, .max, .min] { data.le32(UInt32(bitPattern: v)) }  // 12 -> 32
        for v: Int64 in [-(1 << 40), 1 << 62] { data.le64(UInt64(bitPattern: v)) }  // 16 -> 48
        data.le64(0x3FB9_9999_9999_999A)  // F64 0.1 -> 56
        data.append(contentsOf: [0xFF, 0x80, 0x02, 0x00])  // U8 255, I8 -128, BOOL 2 (true), BOOL 0 -> 60
        data.le16(Int(UInt16(bitPattern: -300)))  // I16 -> 62
        let header = """
            {"half":{"dtype":"F16","shape":[7],"data_offsets":[0,14]},\
            "bf":{"dtype":"BF16","shape":[3,1],"data_offsets":[14,20]},\
            "i32":{"dtype":"I32","shape":[3],"data_offsets":[20,32]},\
            "i64":{"dtype":"I64","shape":[2],"data_offsets":[32,48]},\
            "f64":{"dtype":"F64","shape":[],"data_offsets":[48,56]},\
            "u8":{"dtype":"U8","shape":[1],"data_offsets":[56,57]},\
            "i8":{"dtype":"I8","shape":[1],"data_offsets":[57,58]},\
            "flags":{"dtype":"BOOL","shape":[2],"data_offsets":[58,60]},\
            "i16":{"dtype":"I16","shape":[1],"data_offsets":[60,62]},\
            "__metadata__":{"format":"pt"}}
            """
        let store = try Safetensors.load(data: Data(safetensorsBytes(header: header, data: data)), source: "hand")
        XCTAssertEqual(store.names, ["half", "bf", "i32", "i64", "f64", "u8", "i8", "flags", "i16"])
        XCTAssertEqual(store.metadata, ["format": "pt"])
        let half = try store.require("half").floats()
        XCTAssertEqual(Array(half[0..<4]), [1, -2, 65504, 5.9604644775390625e-08])
        XCTAssertEqual(half[4].bitPattern, 0x8000_0000)  // -0.0 keeps its sign
        XCTAssertEqual(half[5], .infinity)
        XCTAssertEqual(half[6], 6.103515625e-05)
        XCTAssertEqual(try store.require("bf").floats(), [1, -3.5, 0])
        XCTAssertEqual(try store.require("bf").shape, [3, 1])
        XCTAssertEqual(try store.require("i32").int64s(), [-1, 2_147_483_647, -2_147_483_648])
        XCTAssertEqual(try store.require("i32").floats(), [-1, Float(Int32.max), Float(Int32.min)])
        XCTAssertEqual(try store.require("i64").int64s(), [-1_099_511_627_776, 4_611_686_018_427_387_904])
        XCTAssertEqual(try store.require("f64").floats(), [Float(0.1)])
        XCTAssertEqual(try store.require("f64").count, 1)
        XCTAssertEqual(try store.require("u8").int64s(), [255])
        XCTAssertEqual(try store.require("i8").int64s(), [-128])
        XCTAssertEqual(try store.require("flags").int64s(), [1, 0])
        XCTAssertEqual(try store.require("flags").floats(), [1, 0])
        XCTAssertEqual(try store.require("i16").int64s(), [-300])
        XCTAssertThrowsError(try store.require("half").int64s()) {
            guard case .invalidTensor = $0 as? WeightsError else { return XCTFail("\($0)") }
        }
    }

    func testMalformedFilesThrow() {
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let eight = [UInt8](repeating: 0, count: 8)
        var cases: [(String, [UInt8])] = [
            ("empty", []),
            ("seven bytes", [1, 2, 3, 4, 5, 6, 7]),
            ("header only length", { var b: [UInt8] = []; b.le64(0); return b }()),
            ("header past end", { var b: [UInt8] = []; b.le64(100); return b + Array("{}".utf8) }()),
            ("huge header length", { var b: [UInt8] = []; b.le64(UInt64.max); return b + Array("{}".utf8) }()),
            ("header over 100 MB", { var b: [UInt8] = []; b.le64(100_000_001); return b + Array("{}".utf8) }()),
            ("not json", safetensorsBytes(header: "{abc", data: eight)),
            ("not an object", safetensorsBytes(header: "[1, 2]", data: eight)),
            ("truncated header", Array(safetensorsBytes(header: good, data: eight).prefix(30))),
            ("truncated data", Array(safetensorsBytes(header: good, data: eight).dropLast(1))),
            ("offsets out of range", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: eight)),
            ("reversed offsets", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: eight)),
            ("overlapping", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight)),
            ("wrong byte size", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: eight)),
            ("wrong dtype size", safetensorsBytes(header: #"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, data: eight)),
            ("unknown dtype", safetensorsBytes(header: #"{"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}}"#, data: eight)),
            ("negative dimension", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[-8],"data_offsets":[0,8]}}"#, data: eight)),
            ("fractional dimension", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[8.0],"data_offsets":[0,8]}}"#, data: eight)),
            ("overflowing shape", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: eight)),
            ("huge offsets", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,18446744073709551615]}}"#, data: eight)),
            ("missing offsets", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[8]}}"#, data: eight)),
            ("three offsets", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,4,8]}}"#, data: eight)),
            ("unknown field", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"x":1}}"#, data: eight)),
            ("duplicate tensor", safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}"#, data: eight)),
            ("entry not an object", safetensorsBytes(header: #"{"a":[1]}"#, data: eight)),
            ("metadata not strings", safetensorsBytes(header: #"{"__metadata__":{"n":1}}"#, data: [])),
            ("metadata not an object", safetensorsBytes(header: #"{"__metadata__":"x"}"#, data: [])),
            ("trailing garbage", safetensorsBytes(header: good + "x", data: eight)),
            ("invalid UTF-8 in name", safetensorsBytes(header: "{\"\u{FFFD}\":1}", data: []).map { $0 == 0xEF ? 0xFF : $0 }),
            ("lone surrogate escape", safetensorsBytes(header: #"{"\ud800":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#, data: eight)),
            ("control character", safetensorsBytes(header: "{\"a\u{1}\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", data: eight)),
            ("deep nesting", safetensorsBytes(header: "{\"a\":" + String(repeating: "[", count: 100_000), data: [])),
        ]
        cases.append(("header of 1 MB of spaces before the brace", safetensorsBytes(header: String(repeating: " ", count: 1 << 20) + "{}", data: [])))
        for (label, bytes) in cases {
            XCTAssertThrowsError(try Safetensors.load(data: Data(bytes), source: label), label) { error in
                guard case let .invalidSafetensors(path, _) = error as? WeightsError else {
                    return XCTFail("\(label): unexpected error \(error)")
                }
                XCTAssertEqual(path, label)
                XCTAssertFalse(String(describing: error).contains("\n"), label)
            }
        }
    }

    func testHeaderPaddingAndEmptyFileAreAccepted() throws {
        // Trailing spaces after the JSON are the format's padding; an empty tensor list is a valid file.
        let store = try Safetensors.load(data: Data(safetensorsBytes(header: "{}      ", data: [])))
        XCTAssertEqual(store.names, [])
        // Gaps between tensors are tolerated (the data is still bounded and non-overlapping).
        let gap = try Safetensors.load(data: Data(safetensorsBytes(
            header: #"{"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
            data: [1, 2, 3, 4, 5, 6, 7, 8])))
        XCTAssertEqual(gap.names, ["b", "a"])  // header order
        XCTAssertEqual(try gap.require("b").int64s(), [7, 8])
        XCTAssertEqual(try gap.require("a").int64s(), [1, 2])
    }

    func testMissingFileAndDirectoryThrowUnreadable() throws {
        let directory = try temporaryDirectory(self, prefix: "tuss-weights-tests")
        for path in [directory + "/nope.safetensors", directory] {
            XCTAssertThrowsError(try Safetensors.load(path)) {
                guard case let .unreadableFile(p, _) = $0 as? WeightsError else { return XCTFail("\($0)") }
                XCTAssertEqual(p, path)
            }
        }
        // An empty file is unreadable as safetensors, not a crash.
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/empty", contents: Data()))
        XCTAssertThrowsError(try Safetensors.load(directory + "/empty"))
    }

    func testStoreRequireRenameAndErrors() throws {
        let t = WeightTensor(floats: [1, 2], shape: [2])
        let u = WeightTensor(floats: [3], shape: [1])
        let store = try WeightStore([("model.a", t), ("b", u), ("model.b", t)], metadata: ["k": "v"], source: "m.pth")
        XCTAssertEqual(store.count, 3)
        XCTAssertEqual(try store.require("model.a"), t)
        XCTAssertThrowsError(try store.require("x")) { error in
            XCTAssertEqual(String(describing: error), "missing tensor 'x' in m.pth; is this the right kind of model file?")
        }
        let renamed = store.renamed(strippingPrefix: "model.")
        XCTAssertEqual(renamed.names, ["a", "b"])  // "model.b" collides with the earlier "b": first kept
        XCTAssertEqual(renamed["b"], u)
        XCTAssertEqual(renamed.metadata, ["k": "v"])
        XCTAssertEqual(renamed.source, "m.pth")
        XCTAssertEqual(store.renamed(strippingPrefix: "zzz.").names, store.names)
        XCTAssertThrowsError(try WeightStore([("a", t), ("a", u)]))
        XCTAssertThrowsError(try store.require("evil\nname")) { error in
            XCTAssertFalse(String(describing: error).contains("\n"))
        }
        XCTAssertEqual(store.namedTensors.map(\.name), store.names)
    }

    func testTensorInitChecksSizes() throws {
        XCTAssertThrowsError(try WeightTensor(dtype: .f32, shape: [2], bytes: Data([0, 0, 0]))) {
            guard case .invalidTensor = $0 as? WeightsError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try WeightTensor(dtype: .u8, shape: [-1], bytes: Data()))
        XCTAssertThrowsError(try WeightTensor(dtype: .f64, shape: [Int.max, 2], bytes: Data()))
        let scalar = try WeightTensor(dtype: .f64, shape: [], bytes: Data([0, 0, 0, 0, 0, 0, 0xF0, 0x3F]))
        XCTAssertEqual(try scalar.floats(), [1])
        XCTAssertEqual(scalar.byteCount, 8)
        XCTAssertEqual(WeightDType.allCases.map(\.byteSize), [4, 2, 2, 8, 8, 4, 2, 1, 1, 1])
    }
}
