import Foundation
import XCTest

/// The package root: the directory that holds Package.swift.
///
/// Derived from this file's own location rather than a caller's `#filePath`, so it stays right for every test target
/// (they all sit at `Tests/<Target>/`, the same depth as this file) and nobody can pass a wrong path in.
public func packageRoot() -> String {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TussTestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // package root
        .path
}

/// A path inside `../shared/reference` beside the package root, or a skip saying what is missing.
///
/// The reference bundles are produced by the Python recipes next to the package and are not part of a user's clone,
/// so their absence skips the test instead of failing it; the message names the folder or file so the skip is not
/// mistaken for a pass. An empty `relative` returns the reference folder itself.
public func sharedReference(_ relative: String = "") throws -> String {
    let root = ((packageRoot() as NSString).deletingLastPathComponent as NSString).appendingPathComponent("shared/reference")
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw XCTSkip("../shared/reference not found: reference bundles are not part of a user's clone")
    }
    guard !relative.isEmpty else { return root }
    let path = (root as NSString).appendingPathComponent(relative)
    guard FileManager.default.fileExists(atPath: path) else {
        throw XCTSkip("../shared/reference/\(relative) not found: the reference folder lacks this bundle")
    }
    return path
}

/// A fresh empty directory under the system temporary directory, removed when `test` tears down.
///
/// Removal rides on the test's teardown block so a failing or throwing test cleans up too; `prefix` names the
/// owning suite so a directory left behind by a crash can be traced.
public func temporaryDirectory(_ test: XCTestCase, prefix: String) throws -> String {
    let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}
