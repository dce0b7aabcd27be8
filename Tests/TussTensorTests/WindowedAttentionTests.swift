import XCTest
import TussTensor
import TussTestSupport
#if os(Linux)
import Glibc
#endif

final class WindowedAttentionTests: XCTestCase {
    /// The windowed kernel against a naive softmax over exactly the allowed keys, with a cache, prefix tokens,
    /// several query blocks and a window shorter than the history.
    func testAgainstNaiveMaskedAttention() {
        var rng = XorshiftGenerator(seed: 7)
        let heads = 2, dh = 4, a = heads * dh
        for (history, count, window, prefix) in [(0, 11, 4, 3), (3, 9, 4, 0), (5, 1, 6, 2), (2, 20, 1, 1), (0, 5, 64, 2)] {
            let q = rng.array(count * a), plain = rng.array(count * a)
            let pk = rng.array(max(prefix, 1) * a), pv = rng.array(max(prefix, 1) * a)
            let fk = rng.array((history + count) * a), fv = rng.array((history + count) * a)
            var out = [Float](repeating: .nan, count: count * a)
            q.withUnsafeBufferPointer { qb in plain.withUnsafeBufferPointer { lb in pk.withUnsafeBufferPointer { pkb in
            pv.withUnsafeBufferPointer { pvb in fk.withUnsafeBufferPointer { fkb in fv.withUnsafeBufferPointer { fvb in
            out.withUnsafeMutableBufferPointer { ob in
                WindowedAttention.apply(
                    queries: .init(qb.baseAddress!, stride: a), plainQueries: .init(lb.baseAddress!, stride: a), count: count,
                    prefixKeys: .init(pkb.baseAddress!, stride: a), prefixValues: .init(pvb.baseAddress!, stride: a), prefixCount: prefix,
                    frameKeys: .init(fkb.baseAddress!, stride: a), frameValues: .init(fvb.baseAddress!, stride: a), history: history,
                    window: window, heads: heads, headDim: dh, output: ob.baseAddress!, outputStride: a)
            } } } } } } }
            var expected = [Float](repeating: 0, count: count * a)
            for i in 0..<count {
                for h in 0..<heads {
                    var scores: [(Double, [Float])] = []
                    func dot(_ x: [Float], _ xr: Int, _ y: [Float], _ yr: Int) -> Double {
                        (0..<dh).reduce(0.0) { $0 + Double(x[xr * a + h * dh + $1]) * Double(y[yr * a + h * dh + $1]) }
                    }
                    for p in 0..<prefix { scores.append((dot(plain, i, pk, p) / Double(dh).squareRoot(), Array(pv[(p * a + h * dh)..<(p * a + h * dh + dh)]))) }
                    let pos = history + i
                    for j in max(0, pos - window + 1)...pos {
                        scores.append((dot(q, i, fk, j) / Double(dh).squareRoot(), Array(fv[(j * a + h * dh)..<(j * a + h * dh + dh)])))
                    }
                    let m = scores.map(\.0).max() ?? 0
                    let total = scores.reduce(0.0) { $0 + exp($1.0 - m) }
                    for e in 0..<dh {
                        expected[i * a + h * dh + e] = Float(scores.reduce(0.0) { $0 + exp($1.0 - m) / total * Double($1.1[e]) })
                    }
                }
            }
            XCTAssertLessThan(relativeL2(out, expected), 1e-5, "history \(history) count \(count) window \(window) prefix \(prefix)")
        }
    }

    /// Angles are formed in Double: a position hours into a stream rotates as exactly as position 0.
    func testExactRotaryTableAtLargePositions() {
        let start = 180_000 * 7
        let table = ExactRotaryTable(headDim: 8, start: start, count: 3)
        for t in 0..<3 {
            for p in 0..<4 {
                let angle = Double(start + t) * (1 / pow(10000, Double(2 * p) / 8))
                XCTAssertEqual(table.cos[t * 4 + p], Float(cos(angle)), accuracy: 1e-6)
                XCTAssertEqual(table.sin[t * 4 + p], Float(sin(angle)), accuracy: 1e-6)
            }
        }
    }
}
