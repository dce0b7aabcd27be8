import Foundation
import XCTest
@testable import TussServer

final class StemContainerTests: XCTestCase {
    func testRoundTripAndExactBytes() throws {
        let container = StemContainer(entries: [
            .init(name: "speech", mediaType: "audio/wav", data: Data([1, 2, 3])),
            .init(name: "sfx-mix", mediaType: StemContainer.codesMediaType, data: Data()),
        ])
        let bytes = try container.encoded()
        XCTAssertEqual(try StemContainer.decode(bytes), container)
        // Magic, version 1, two entries; the first entry's name length and name.
        XCTAssertEqual(Array(bytes.prefix(19)), Array("TUSSSTEM".utf8) + [1, 0, 2, 0, 6] + Array("speech".utf8))
        XCTAssertEqual(Array(bytes.suffix(4)), Array("SEND".utf8))
    }

    func testTruncationAndDamageAreReported() throws {
        let bytes = try StemContainer(entries: [.init(name: "vocals", mediaType: "audio/flac", data: Data(repeating: 7, count: 100))]).encoded()
        for cut in [0, 5, 12, 40, bytes.count - 1] {
            XCTAssertThrowsError(try StemContainer.decode(bytes.prefix(cut))) { error in
                XCTAssertEqual((error as? ServerError)?.kind, "truncated", "cut at \(cut): \(error)")
            }
        }
        var damaged = bytes
        damaged[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try StemContainer.decode(damaged)) { XCTAssertEqual(($0 as? ServerError)?.kind, "bad_request") }
        XCTAssertThrowsError(try StemContainer.decode(bytes + Data([0]))) { XCTAssertEqual(($0 as? ServerError)?.kind, "bad_request") }
    }
}
