import Foundation
import XCTest
import TussAudio

/// A deterministic test signal: two tones and a noise burst per channel.
func testSignal(seconds: Double, rate: Int, channels: Int) -> [[Float]] {
    let n = Int(seconds * Double(rate))
    var state: UInt64 = 0x1234_5678
    return (0..<channels).map { c in
        (0..<n).map { i in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let t = Double(i) / Double(rate)
            let noise = Double(state >> 40) / Double(1 << 24) - 0.5
            let burst = (t.truncatingRemainder(dividingBy: 1) < 0.2) ? 0.2 * noise : 0
            return Float(0.3 * sin(2 * .pi * (220 + 110 * Double(c)) * t) + 0.1 * sin(2 * .pi * 1500 * t) + burst)
        }
    }
}

/// Writes a signal with the given format and returns the path.
func writeAudio(_ planar: [[Float]], rate: Int, to path: String, float32: Bool = false) throws -> String {
    let format = try AudioFileFormat.forWriting(path: path, like: nil, float32: float32)
    let w = try AudioFileWriter(path: path, sampleRate: rate, channels: planar.count, format: format)
    try w.write(planar)
    try w.finish()
    return path
}
