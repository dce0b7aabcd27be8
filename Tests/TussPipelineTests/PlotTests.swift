import CZlib
import Foundation
import XCTest
import TussPipeline
import TussTestSupport

final class PlotTests: XCTestCase {
    func testToneAppearsAtItsFrequencyAndThePNGDecodes() throws {
        let rate = 16000
        let tone = (0..<rate).map { Float(0.5 * sin(2 * Double.pi * 1000 * Double($0) / Double(rate))) }
        let silence = [Float](repeating: 0, count: rate)
        let image = try SpectrogramPlot.render([.init(label: "tone", samples: tone), .init(label: "silence", samples: silence)],
                                               sampleRate: rate, width: 200, panelHeight: 80)
        XCTAssertEqual(image.width, 200)
        XCTAssertEqual(image.height, 2 * (80 + 22 + 4))
        // Brightest row of the tone panel (column 100): 1 kHz of 8 kHz is 1/8 of the way up from the bottom.
        let top = 22
        var best = 0, bestValue = -1
        for y in 0..<80 {
            let (r, g, b) = image[100, top + y]
            let v = Int(r) + Int(g) + Int(b)
            if v > bestValue { bestValue = v; best = y }
        }
        XCTAssertEqual(Double(80 - 1 - best), 80.0 / 8, accuracy: 2, "tone row")
        // The silent panel is the floor colour everywhere.
        let floor = image[10, 106 + 22 + 10]
        XCTAssertEqual(image[150, 106 + 22 + 70].0, floor.0)

        let png = try image.pngData()
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let bytes = [UInt8](png)
        func u32(_ i: Int) -> Int { Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3]) }
        XCTAssertEqual(String(decoding: bytes[12..<16], as: UTF8.self), "IHDR")
        XCTAssertEqual(u32(16), 200)
        XCTAssertEqual(u32(20), image.height)
        // Inflate IDAT and compare with the pixels (filter byte 0 per row).
        let idatStart = 8 + 25
        XCTAssertEqual(String(decoding: bytes[(idatStart + 4)..<(idatStart + 8)], as: UTF8.self), "IDAT")
        let length = u32(idatStart)
        let compressed = Array(bytes[(idatStart + 8)..<(idatStart + 8 + length)])
        var rawSize = uLong((200 * 3 + 1) * image.height)
        var raw = [UInt8](repeating: 0, count: Int(rawSize))
        let status = uncompress(&raw, &rawSize, compressed, uLong(compressed.count))
        XCTAssertEqual(status, Z_OK)
        XCTAssertEqual(Array(raw[1..<(1 + 600)]), Array(image.pixels[0..<600]))
        XCTAssertEqual(String(decoding: bytes.suffix(8).prefix(4), as: UTF8.self), "IEND")
    }

    func testPlotCommandWritesAPNG() throws {
        let dir = try temporaryDirectory(self, prefix: "tuss-codec-tests")
        let a = try writeAudio(testSignal(seconds: 1, rate: 22050, channels: 2), rate: 22050, to: dir + "/a.wav")
        let b = try writeAudio(testSignal(seconds: 0.5, rate: 8000, channels: 1), rate: 8000, to: dir + "/b.flac")
        let r = try runTool(["plot", a, b, "-o", dir + "/p.png"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertGreaterThan((try FileManager.default.attributesOfItem(atPath: dir + "/p.png")[.size] as? Int) ?? 0, 1000)
        let bad = try runTool(["plot", dir + "/missing.wav", "-o", dir + "/q.png"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/q.png"))
    }
}
