import Foundation
import TussTestSupport
import TussWeights
import XCTest

final class TorchCheckpointTests: XCTestCase {
    // MARK: Files written by PyTorch

    func testTorchFixtureStateDictValues() throws {
        let store = try TorchCheckpoint.stateDict(data: Fixtures.torchFixtureV2, at: ["state_dict"], source: "fixture")
        XCTAssertEqual(store.names, ["plain", "row", "transposed", "every_other", "half", "bf", "long", "mask", "scalar", "param", "empty"])
        func check(_ name: String, _ dtype: WeightDType, _ shape: [Int], _ values: [Float], file: StaticString = #filePath, line: UInt = #line) throws {
            let tensor = try store.require(name)
            XCTAssertEqual(tensor.dtype, dtype, name, file: file, line: line)
            XCTAssertEqual(tensor.shape, shape, name, file: file, line: line)
            XCTAssertEqual(bits(try tensor.floats()), bits(values), name, file: file, line: line)
        }
        // Expected values: torch's own `.contiguous().reshape(-1).tolist()` (see Fixtures.swift).
        try check("plain", .f32, [4, 6], (0..<24).map { Float($0) * 0.5 - 3 })
        try check("row", .f32, [6], [3.0, 3.5, 4.0, 4.5, 5.0, 5.5])  // storage offset 12
        try check("transposed", .f32, [6, 4], [
            -3.0, 0.0, 3.0, 6.0, -2.5, 0.5, 3.5, 6.5, -2.0, 1.0, 4.0, 7.0,
            -1.5, 1.5, 4.5, 7.5, -1.0, 2.0, 5.0, 8.0, -0.5, 2.5, 5.5, 8.5,
        ])
        try check("every_other", .f32, [4, 3], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        try check("half", .f16, [6], [1.0, -2.0, 0.5, 65504.0, 6.103515625e-05, 5.960464477539063e-08])
        try check("bf", .bf16, [3], [1.0, -3.5, 1.0002555517425873e+30])
        try check("scalar", .f64, [], [2.25])
        try check("param", .f32, [1, 2], [0.25, -0.75])
        try check("empty", .f32, [0, 3], [])
        try check("mask", .bool, [3], [1, 0, 1])
        XCTAssertEqual(try store.require("long").int64s(), [-1_099_511_627_776, 7, 0, 4_611_686_018_427_387_904])
        XCTAssertEqual(try store.require("long").shape, [2, 2])
        // Views share bytes instead of copying: "row" starts 12 floats into the storage of "plain".
        let plainStart = try store.require("plain").withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let rowStart = try store.require("row").withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(rowStart, plainStart + 48)
    }

    func testTorchFixtureWholeObjectAndMetadata() throws {
        let root = try TorchCheckpoint.load(data: Fixtures.torchFixtureV2)
        guard case let .dict(entries) = root else { return XCTFail("root is not a dict") }
        XCTAssertEqual(entries.compactMap { if case let .string(s) = $0.key { return s } else { return nil } }, ["state_dict", "meta", "nested"])
        let kwargs = try XCTUnwrap(root["meta"]?["kwargs"])
        let config = try XCTUnwrap(ConfigValue(pickle: kwargs))
        XCTAssertEqual(config, .object([
            "rates": .array([.int(2), .int(4)]), "name": .string("fx"), "drop": .bool(false), "eps": .double(1e-5),
            "big": .int(1 << 40), "neg": .int(-3), "none": .null, "tup": .array([.int(1), .double(2.5)]),
        ]))
        XCTAssertNil(ConfigValue(pickle: try XCTUnwrap(root["state_dict"])))  // holds tensors

        // Flattening the whole object: nested dicts of tensors join with ".", plain values are skipped.
        let all = try TorchCheckpoint.stateDict(data: Fixtures.torchFixtureV2)
        XCTAssertEqual(all.names.first, "state_dict.plain")
        XCTAssertEqual(all.names.last, "nested.a.b")
        XCTAssertEqual(all.count, 12)
        XCTAssertEqual(try all.require("nested.a.b").int64s(), [3, 4])
        XCTAssertEqual(try all.require("nested.a.b").dtype, .i32)
        let nested = try TorchCheckpoint.stateDict(data: Fixtures.torchFixtureV2, at: ["nested"])
        XCTAssertEqual(nested.names, ["a.b"])
    }

    func testTorchFixtureProtocol4() throws {
        let root = try TorchCheckpoint.load(data: Fixtures.torchFixtureV4)
        guard case let .bytes(bytes)? = root["b"] else { return XCTFail("b is not bytes") }
        XCTAssertEqual(bytes, [0x00, 0xFF, 0x61, 0x62])
        guard case let .string(text)? = root["s"] else { return XCTFail("s is not a string") }
        XCTAssertEqual(text, "caf\u{E9} \u{1F600}")
        guard case let .float(zero)? = root["f"] else { return XCTFail("f is not a float") }
        XCTAssertEqual(zero.bitPattern, (-0.0 as Double).bitPattern)
        let store = try TorchCheckpoint.stateDict(data: Fixtures.torchFixtureV4, at: ["sd"])
        XCTAssertEqual(store.names, ["w", "k", "i", "u", "c"])
        XCTAssertEqual(try store.require("w").floats(), [1.5, -2.0, 3.25])
        XCTAssertEqual(try store.require("w").shape, [1, 3])
        XCTAssertEqual(try store.require("k"), try store.require("w"))  // tied: the same memoized tensor
        XCTAssertEqual(try store.require("i").int64s(), [-5, 6])
        XCTAssertEqual(try store.require("u").int64s(), [200, 1])
        XCTAssertEqual(try store.require("c").int64s(), [-128, 127])
    }

    func testLoadFromFileMatchesLoadFromData() throws {
        let directory = try temporaryDirectory(self, prefix: "tuss-weights-tests")
        let path = directory + "/fixture.pth"
        try Fixtures.torchFixtureV4.write(to: URL(fileURLWithPath: path))
        let store = try TorchCheckpoint.stateDict(path, at: ["sd"])
        XCTAssertEqual(store.source, path)
        XCTAssertEqual(try store.require("w").floats(), [1.5, -2.0, 3.25])
        guard case .dict = try TorchCheckpoint.load(path) else { return XCTFail() }
        XCTAssertThrowsError(try TorchCheckpoint.load(directory + "/missing.pth")) {
            guard case .unreadableFile = $0 as? WeightsError else { return XCTFail("\($0)") }
        }
    }

    // MARK: Archives built here

    func testBuiltCheckpointWithAndWithoutZip64() throws {
        for zip64 in [false, true] {
            let store = try TorchCheckpoint.stateDict(data: Data(builtCheckpoint(zip64: zip64)))
            XCTAssertEqual(store.names, ["w", "b", "sub.h"], "zip64 \(zip64)")
            XCTAssertEqual(try store.require("w").floats(), [1, 2, 3, -4, 0.5, 6])
            XCTAssertEqual(try store.require("w").shape, [2, 3])
            XCTAssertEqual(try store.require("b").int64s(), [-9, 1 << 40])
            XCTAssertEqual(try store.require("sub.h").floats(), [1, -2])
        }
    }

    func testHugeStrideOnUnitDimensionIsMaterialised() throws {
        var p = PickleWriter()
        p.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 0, size: [3, 1, 2], stride: [1, Int.max, 3])
        p.stop()
        let root = try TorchCheckpoint.load(data: checkpoint(p.bytes, storages: [("0", floatBytes([0, 1, 2, 3, 4, 5]))]))
        guard case let .tensor(tensor) = root else { return XCTFail("\(root)") }
        XCTAssertEqual(tensor.shape, [3, 1, 2])
        XCTAssertEqual(try tensor.floats(), [0, 3, 1, 4, 2, 5])
    }

    func testPythonSemanticsOfSharedContainersAndKeys() throws {
        var p = PickleWriter()
        p.op(0x7D)  // EMPTY_DICT
        p.mark()
        p.string("a"); p.op(0x5D); p.op(0x71); p.bytes.append(1)  // [] memoized as 1
        p.string("b"); p.op(0x68); p.bytes.append(1)  // the same list
        p.int(1); p.string("one")
        p.op(0x88); p.string("true")  // True == 1: replaces the value, keeps the first key
        p.op(0x75)  // SETITEMS
        p.op(0x68); p.bytes.append(1); p.int(5); p.op(0x61); p.op(0x30)  // list.append(5), then POP
        p.stop()
        let root = try TorchCheckpoint.load(data: checkpoint(p.bytes))
        guard case let .dict(entries) = root, entries.count == 3 else { return XCTFail("\(root)") }
        for key in ["a", "b"] {
            guard case let .list(values)? = root[key], values.count == 1, case .int(5) = values[0] else {
                return XCTFail("\(key): \(String(describing: root[key]))")
            }
        }
        guard case .int(1) = entries[2].key, case .string("true") = entries[2].value else { return XCTFail("\(entries[2])") }
    }

    func testOtherSupportedOpcodesAndGlobals() throws {
        var p = PickleWriter()
        p.mark()
        p.string("size"); p.global("torch", "Size"); p.tuple([2, 3]); p.op(0x85); p.op(0x52)
        p.string("device"); p.global("torch", "device"); p.string("cuda"); p.int(1); p.op(0x86); p.op(0x52)
        p.string("raw"); p.global("_codecs", "encode"); p.string("\u{FF}A"); p.string("latin1"); p.op(0x86); p.op(0x52)
        p.string("py2"); p.op(0x55); p.bytes.append(2); p.bytes.append(contentsOf: [0xE9, 0x41])  // SHORT_BINSTRING
        p.string("list"); p.mark(); p.int(1); p.op(0x4E); p.op(0x6C)  // LIST
        p.string("od"); p.global("collections", "OrderedDict"); p.op(0x29); p.op(0x81)  // NEWOBJ
        p.string("dup"); p.int(7); p.op(0x32); p.op(0x30)  // DUP then POP
        p.string("popmark"); p.mark(); p.int(1); p.int(2); p.op(0x31); p.int(8)  // POP_MARK
        p.op(0x64)  // DICT
        p.stop()
        let root = try TorchCheckpoint.load(data: checkpoint(p.bytes))
        guard case let .tuple(size)? = root["size"], size.count == 2 else { return XCTFail("size") }
        guard case .string("cuda:1")? = root["device"] else { return XCTFail("device") }
        guard case .bytes([0xFF, 0x41])? = root["raw"] else { return XCTFail("raw") }
        guard case .string("\u{E9}A")? = root["py2"] else { return XCTFail("py2") }
        guard case let .list(list)? = root["list"], list.count == 2 else { return XCTFail("list") }
        guard case let .dict(od)? = root["od"], od.isEmpty else { return XCTFail("od") }
        guard case .int(7)? = root["dup"] else { return XCTFail("dup") }
        guard case .int(8)? = root["popmark"] else { return XCTFail("popmark") }
    }

    // MARK: Errors

    func testKeyPathErrors() throws {
        let data = Fixtures.torchFixtureV2
        for keyPath in [["missing"], ["meta", "kwargs", "rates"], ["meta", "kwargs", "rates", "x"], ["meta"]] {
            XCTAssertThrowsError(try TorchCheckpoint.stateDict(data: data, at: keyPath), "\(keyPath)") { error in
                guard case let .invalidKeyPath(_, path, _) = error as? WeightsError else { return XCTFail("\(error)") }
                XCTAssertEqual(path, keyPath)
                XCTAssertTrue(String(describing: error).contains("state_dict"))
            }
        }
    }

    /// Hostile or unsupported pickles: each gives a WeightsError (of the expected kind), never a crash or a hang.
    func testHostilePicklesThrow() {
        func pickle(_ build: (inout PickleWriter) -> Void) -> [UInt8] {
            var p = PickleWriter()
            build(&p)
            return p.bytes
        }
        let six = floatBytes([0, 1, 2, 3, 4, 5])
        let cases: [(label: String, data: Data, unsupported: Bool, mentions: String?)] = [
            ("os.system", checkpoint(pickle { $0.global("os", "system"); $0.string("echo"); $0.op(0x85); $0.op(0x52); $0.stop() }), true, "os.system"),
            ("unknown opcode", checkpoint(pickle { $0.op(0xFF) }), true, "opcode 0xff"),
            ("protocol 6", checkpoint([0x80, 0x06, 0x4E, 0x2E]), true, "protocol 6"),
            ("empty stack at STOP", checkpoint(pickle { $0.stop() }), false, "underflow"),
            ("no STOP", checkpoint(pickle { $0.op(0x4E) }), false, "truncated"),
            ("undefined memo", checkpoint(pickle { $0.op(0x68); $0.bytes.append(5); $0.stop() }), false, "memo"),
            ("huge string length", checkpoint(pickle { $0.op(0x58); $0.bytes.le32(0xFFFF_FFF0); $0.stop() }), false, "length"),
            ("invalid UTF-8", checkpoint(pickle { $0.op(0x8C); $0.bytes += [2, 0xC3, 0x28]; $0.stop() }), false, "UTF-8"),
            ("wide integer", checkpoint(pickle { $0.op(0x8A); $0.bytes.append(9); $0.bytes += [UInt8](repeating: 1, count: 9); $0.stop() }), true, "64 bits"),
            ("tensor past storage", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 1, size: [6], stride: [1]); $0.stop()
            }, storages: [("0", six)]), false, "past"),
            ("storage shorter than numel", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 7, offset: 0, size: [6], stride: [1]); $0.stop()
            }, storages: [("0", six)]), false, "fewer"),
            ("missing storage", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "9", numel: 6, offset: 0, size: [6], stride: [1]); $0.stop()
            }, storages: [("0", six)]), false, "storage '9'"),
            ("negative stride", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 5, size: [6], stride: [-1]); $0.stop()
            }, storages: [("0", six)]), false, "negative"),
            ("size/stride mismatch", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 0, size: [2, 3], stride: [1]); $0.stop()
            }, storages: [("0", six)]), false, "stride"),
            ("overflowing extent", checkpoint(pickle {
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 0, size: [3, 3], stride: [Int.max, 1]); $0.stop()
            }, storages: [("0", six)]), false, "overflow"),
            ("unknown storage type", checkpoint(pickle {
                $0.tensor(storageType: "QInt8Storage", key: "0", numel: 6, offset: 0, size: [6], stride: [1]); $0.stop()
            }, storages: [("0", six)]), true, "torch.QInt8Storage"),
            ("one storage, two dtypes", checkpoint(pickle {
                $0.mark()
                $0.tensor(storageType: "FloatStorage", key: "0", numel: 6, offset: 0, size: [6], stride: [1])
                $0.tensor(storageType: "IntStorage", key: "0", numel: 6, offset: 0, size: [6], stride: [1])
                $0.op(0x74); $0.stop()
            }, storages: [("0", six)]), false, "two dtypes"),
            ("BUILD on a list", checkpoint(pickle { $0.op(0x5D); $0.op(0x4E); $0.op(0x62); $0.stop() }), true, "BUILD"),
            ("self-referencing list", checkpoint(pickle {
                $0.op(0x5D); $0.op(0x71); $0.bytes.append(0); $0.op(0x68); $0.bytes.append(0); $0.op(0x61); $0.stop()
            }), true, "nested"),
            ("deep tuples", checkpoint(pickle { $0.op(0x4E); $0.bytes += [UInt8](repeating: 0x85, count: 200_000); $0.stop() }), true, "nested"),
            ("exponential sharing", checkpoint(pickle {
                $0.op(0x4E); for _ in 0..<60 { $0.op(0x32); $0.op(0x86) }; $0.stop()
            }), true, "values"),
            ("stack overflow", checkpoint(pickle { $0.bytes += [UInt8](repeating: 0x4E, count: (1 << 20) + 1); $0.stop() }), false, "stack"),
            ("unhashable key", checkpoint(pickle { $0.op(0x7D); $0.op(0x5D); $0.op(0x4E); $0.op(0x73); $0.stop() }), true, "unhashable"),
            ("SETITEM on a list", checkpoint(pickle { $0.op(0x5D); $0.op(0x4E); $0.op(0x4E); $0.op(0x73); $0.stop() }), false, "not a dict"),
            ("APPENDS without MARK", checkpoint(pickle { $0.op(0x5D); $0.op(0x65); $0.stop() }), false, "MARK"),
            ("REDUCE on a non-global", checkpoint(pickle { $0.int(3); $0.op(0x29); $0.op(0x52); $0.stop() }), false, "not callable"),
            ("persistent id of another kind", checkpoint(pickle { $0.string("module"); $0.op(0x85); $0.op(0x51); $0.stop() }), true, "persistent id"),
            ("legacy format", Data([0x80, 0x02, 0x8A, 0x0A]), true, "legacy"),
            ("not a zip", Data("hello, this is not a checkpoint at all".utf8), false, "zip"),
            ("big-endian", checkpoint(pickle { $0.op(0x4E); $0.stop() }, byteOrder: "big"), true, "byte order"),
            ("no data.pkl", Data(TestZip.archive([(name: "m/constants.pkl", data: [0x80, 0x02, 0x4E, 0x2E])])), true, "TorchScript"),
        ]
        for (label, data, unsupported, mentions) in cases {
            XCTAssertThrowsError(try TorchCheckpoint.load(data: data, source: label), label) { error in
                guard let error = error as? WeightsError else { return XCTFail("\(label): \(error)") }
                let message = String(describing: error)
                switch error {
                case .unsupportedCheckpoint: XCTAssertTrue(unsupported, "\(label): \(message)")
                case .invalidCheckpoint: XCTAssertFalse(unsupported, "\(label): \(message)")
                default: XCTFail("\(label): \(message)")
                }
                if let mentions { XCTAssertTrue(message.contains(mentions), "\(label): \(message)") }
                XCTAssertTrue(message.contains("'\(label)'"), "\(label): \(message)")
                XCTAssertFalse(message.contains("\n"), label)
            }
        }
    }

    func testCorruptArchivesThrow() throws {
        let good = builtCheckpoint()
        // The first central-directory header: switch its method to deflate.
        var compressed = good
        let directory = try XCTUnwrap((0..<(good.count - 4)).first { good.le32(at: $0) == 0x0201_4B50 })
        compressed[directory + 10] = 8
        // A byte of data.pkl (its content starts at 64 in these archives).
        var corrupt = good
        corrupt[70] ^= 0x01
        // Central directory offset pointing past the end.
        var badOffset = good
        badOffset[good.count - 6] = 0xFF
        badOffset[good.count - 5] = 0xFF
        for (label, bytes, mention) in [("compressed", compressed, "compressed"), ("crc", corrupt, "CRC"), ("offset", badOffset, "central directory"),
                                        ("truncated", Array(good.prefix(good.count - 30)), "end-of-central-directory")] {
            XCTAssertThrowsError(try TorchCheckpoint.load(data: Data(bytes), source: label), label) { error in
                guard case .invalidCheckpoint = error as? WeightsError else { return XCTFail("\(label): \(error)") }
                XCTAssertTrue(String(describing: error).contains(mention), "\(label): \(error)")
            }
        }
    }
}
