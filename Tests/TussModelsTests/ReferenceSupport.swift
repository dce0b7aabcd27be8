import Foundation
import XCTest
import TussWeights

/// The tolerance the reference bundles state for float32 outputs and intermediates.
let referenceTolerance = 1e-4

/// Case files of a bundle, sorted.
func caseFiles(_ bundle: String) throws -> [String] {
    let dir = (bundle as NSString).appendingPathComponent("cases")
    return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".safetensors") }.sorted()
        .map { (dir as NSString).appendingPathComponent($0) }
}
