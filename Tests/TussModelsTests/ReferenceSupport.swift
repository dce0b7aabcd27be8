import Foundation
import XCTest
import TussWeights

/// Locates `../shared/reference` beside the package root, or skips the test with a message saying why.
func sharedReference(_ relative: String = "", file: StaticString = #filePath) throws -> String {
    let root = URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.deletingLastPathComponent().appendingPathComponent("shared/reference").appendingPathComponent(relative).path
    guard FileManager.default.fileExists(atPath: path) else {
        throw XCTSkip("../shared/reference not found: reference bundles are not part of a user's clone")
    }
    return path
}

/// The package root (for committed fixtures and models).
func packageRoot(file: StaticString = #filePath) -> String {
    URL(fileURLWithPath: "\(file)").deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// `‖a − b‖ / ‖b‖` over whole tensors, in Double.
func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return (num / max(den, 1e-300)).squareRoot()
}

/// The tolerance the reference bundles state for float32 outputs and intermediates.
let referenceTolerance = 1e-4

/// Case files of a bundle, sorted.
func caseFiles(_ bundle: String) throws -> [String] {
    let dir = (bundle as NSString).appendingPathComponent("cases")
    return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }.sorted()
        .map { (dir as NSString).appendingPathComponent($0) }
}
