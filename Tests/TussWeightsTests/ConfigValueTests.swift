import Foundation
import TussWeights
import XCTest

final class ConfigValueTests: XCTestCase {
    func testYAMLScalarsAnchorsAndMerges() throws {
        let yaml = """
            base: &base
              fft_size: 2048
              window: sqrt_hann
              normalize: null
            decoder_conf: *base
            derived:
              <<: *base
              fft_size: 1024
            flags: [true, false, yes, off]
            numbers: [1, -7, 0x10, 1.5, 1.0e-07, .inf]
            empty:
            quoted: "123"
            list:
            - - a
              - ~
            """
        let config = try ConfigValue.parseYAML(yaml)
        XCTAssertEqual(config["decoder_conf"], config["base"])
        XCTAssertEqual(config["base"], .object(["fft_size": .int(2048), "window": .string("sqrt_hann"), "normalize": .null]))
        XCTAssertEqual(config["derived"], .object(["fft_size": .int(1024), "window": .string("sqrt_hann"), "normalize": .null]))
        XCTAssertEqual(config["flags"], .array([.bool(true), .bool(false), .bool(true), .bool(false)]))
        XCTAssertEqual(config["numbers"]?[0], .int(1))
        XCTAssertEqual(config["numbers"]?[1], .int(-7))
        XCTAssertEqual(config["numbers"]?[2], .int(16))
        XCTAssertEqual(config["numbers"]?[3], .double(1.5))
        XCTAssertEqual(config["numbers"]?[4], .double(1e-7))
        XCTAssertEqual(config["numbers"]?[5]?.doubleValue, .infinity)
        XCTAssertNil(config["numbers"]?[6])
        XCTAssertEqual(config["empty"], .null)
        XCTAssertEqual(config["quoted"], .string("123"))
        XCTAssertEqual(config["list"]?[0], .array([.string("a"), .null]))
        XCTAssertEqual(try ConfigValue.parseYAML(""), .null)
    }

    func testYAMLErrors() {
        // Ten levels of ten aliases each: 10^10 values once expanded; must be refused quickly.
        var lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in 1...9 {
            lines.append("l\(i): &l\(i) [" + Array(repeating: "*l\(i - 1)", count: 10).joined(separator: ", ") + "]")
        }
        let aliasBomb = lines.joined(separator: "\n")
        for (label, text) in [
            ("bad indentation", "a:\n  b: 1\n c: 2\n"),
            ("unknown alias", "a: *nothing\n"),
            ("duplicate key", "a: 1\na: 2\n"),
            ("non-scalar key", "? [1, 2]\n: x\n"),
            ("alias bomb", aliasBomb),
        ] {
            XCTAssertThrowsError(try ConfigValue.parseYAML(text), label) { error in
                guard case .invalidYAML = error as? WeightsError else { return XCTFail("\(label): \(error)") }
                XCTAssertFalse(String(describing: error).contains("\n"), label)
            }
        }
    }

    func testJSONParseAndPrintRoundTrip() throws {
        let text = #"{"b": [1, -2, 3.5, 1e-05, -0.0, true, null, "x\"y\\\n\u00e9\ud83d\ude00\u0001"], "a": {"n": 9007199254740993, "big": 1e300, "huge": 123456789012345678901234567890}}"#
        let value = try ConfigValue.parseJSON(text)
        XCTAssertEqual(value["a"]?["n"], .int(9_007_199_254_740_993))  // beyond 2^53: kept exact as an integer
        XCTAssertEqual(value["a"]?["big"], .double(1e300))
        XCTAssertEqual(value["a"]?["huge"], .double(1.2345678901234568e29))  // too large for Int: a double
        XCTAssertEqual(value["b"]?[2], .double(3.5))
        XCTAssertEqual(value["b"]?[7], .string("x\"y\\\n\u{E9}\u{1F600}\u{1}"))
        XCTAssertEqual(value["b"]?[0]?.doubleValue, 1)
        XCTAssertNil(value["b"]?[2]?.intValue)
        let printed = value.jsonString()
        XCTAssertEqual(printed, #"{"a":{"big":1e+300,"huge":1.2345678901234568e+29,"n":9007199254740993},"b":[1,-2,3.5,1e-05,-0.0,true,null,"x\"y\\\n\#u{E9}\#u{1F600}\u0001"]}"#)
        XCTAssertEqual(try ConfigValue.parseJSON(printed), value)
        XCTAssertEqual(try ConfigValue.parseJSON(value.jsonString(sortedKeys: false)), value)
        XCTAssertEqual(ConfigValue.array([.double(.nan), .double(.infinity)]).jsonString(), "[null,null]")
    }

    func testJSONErrors() {
        for text in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc", "\"\\x\"", "{\"a\":1,\"a\":2}", "[1] 2",
                     "\"\\ud800\"", "\"\u{1}\"", String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000), "1e999", "NaN"] {
            XCTAssertThrowsError(try ConfigValue.parseJSON(text), text) { error in
                guard case .invalidJSON = error as? WeightsError else { return XCTFail("\(text): \(error)") }
            }
        }
        XCTAssertEqual(try ConfigValue.parseJSON(String(repeating: "[", count: 200) + String(repeating: "]", count: 200))[0]?[0]?.arrayValue?.count, 1)
    }

    func testPickleConversion() {
        let pickled = PickleValue.dict([
            (key: .string("rates"), value: .list([.int(2), .int(4)])),
            (key: .string("pair"), value: .tuple([.float(0.5), .none])),
            (key: .string("flag"), value: .bool(true)),
            (key: .string("name"), value: .string("dac")),
        ])
        XCTAssertEqual(ConfigValue(pickle: pickled), .object([
            "rates": .array([.int(2), .int(4)]), "pair": .array([.double(0.5), .null]), "flag": .bool(true), "name": .string("dac"),
        ]))
        XCTAssertNil(ConfigValue(pickle: .dict([(key: .int(1), value: .none)])))
        XCTAssertNil(ConfigValue(pickle: .list([.bytes([1])])))
        XCTAssertNil(ConfigValue(pickle: .tensor(WeightTensor(floats: [1], shape: [1]))))
        XCTAssertNil(ConfigValue(pickle: .global(module: "os", name: "system")))
    }
}
