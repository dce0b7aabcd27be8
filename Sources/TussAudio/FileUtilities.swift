import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A hidden temporary path in the same directory as `path`, so a later `rename(2)` stays on one file system.
func temporarySibling(of path: String) -> String {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[...$0]) } ?? ""
    let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    return directory + "." + base + ".partial-" + token
}

/// Atomically replaces `destination` with `source` (same file system); on failure removes `source` and throws.
func moveIntoPlace(_ source: String, _ destination: String) throws(AudioError) {
    if rename(source, destination) != 0 {
        let reason = String(cString: strerror(errno))
        unlink(source)
        throw AudioError.cannotWrite(path: destination, reason: "cannot move the finished file into place: \(reason)")
    }
}

/// Removes a file if it exists, ignoring errors (for cleaning up temporaries).
func removeQuietly(_ path: String) {
    unlink(path)
}

/// Whether a regular file (or symlink to one) exists at `path`; directories do not count.
func regularFileExists(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
}
