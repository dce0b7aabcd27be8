import XCTest
@testable import TussPipeline

final class OverlapChunkerTests: XCTestCase {
    /// A separator that returns scaled copies of its input: stitching must reproduce the scaled signal exactly
    /// (the raised-cosine weights sum to one), with the exact length, whatever the block sizes.
    func testStitchingReproducesAStationarySeparator() {
        let x = (0..<10_000).map { Float(sin(Double($0) * 0.01)) }
        for (chunk, overlap) in [(1000, 200), (999, 0), (4096, 1024), (20_000, 100)] {
            var chunker = OverlapChunker(chunk: chunk, overlap: overlap, promptKeys: ["a", "b"])
            var out: [[Float]] = [[], []]
            var runs = 0
            let run = { (c: [Float]) -> [[Float]] in runs += 1; return [c, c.map { $0 * 0.5 }] }
            var i = 0
            for block in [1, 333, 2048, 17, 5000, 100_000] where i < x.count {
                let piece = Array(x[i..<min(x.count, i + block)])
                i += piece.count
                let e = chunker.push(piece, outputs: 2, run: run)
                out[0] += e[0]; out[1] += e[1]
            }
            let e = chunker.finish(outputs: 2, run: run)
            out[0] += e[0]; out[1] += e[1]
            XCTAssertEqual(out[0].count, x.count, "chunk \(chunk) overlap \(overlap)")
            for t in 0..<x.count {
                XCTAssertEqual(out[0][t], x[t], accuracy: 1e-6)
                XCTAssertEqual(out[1][t], 0.5 * x[t], accuracy: 1e-6)
            }
            if chunk >= x.count { XCTAssertEqual(runs, 1, "an input within one chunk is one pass") }
        }
    }

    /// Repeated prompts: a separator that swaps its two outputs on every other chunk must be straightened out.
    func testRepeatedPromptsKeepTheirIdentityAcrossChunks() {
        let n = 12_000
        let a = (0..<n).map { Float(sin(Double($0) * 0.05)) }
        let b = (0..<n).map { Float(($0 / 37) % 2 == 0 ? 0.3 : -0.3) }
        var position = 0
        var flip = false
        var chunker = OverlapChunker(chunk: 2000, overlap: 400, promptKeys: ["speech", "speech"])
        // The fake separator knows where each chunk starts from the call count (chunk step 1600).
        let run = { (c: [Float]) -> [[Float]] in
            let range = position..<(position + c.count)
            position += 1600
            flip.toggle()
            let s1 = Array(a[range]), s2 = Array(b[range])
            return flip ? [s2, s1] : [s1, s2]
        }
        var out: [[Float]] = [[], []]
        let e1 = chunker.push(Array(zip(a, b).map { $0 + $1 }), outputs: 2, run: run)
        let e2 = chunker.finish(outputs: 2, run: run)
        out[0] = e1[0] + e2[0]
        out[1] = e1[1] + e2[1]
        XCTAssertEqual(out[0].count, n)
        // The first chunk came out swapped, so output 0 must follow b everywhere.
        var worst: Float = 0
        for t in 0..<n { worst = max(worst, abs(out[0][t] - b[t]), abs(out[1][t] - a[t])) }
        XCTAssertLessThan(worst, 1e-5)
    }
}
