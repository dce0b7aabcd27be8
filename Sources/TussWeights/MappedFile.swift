import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only memory mapping of whole files.
enum MappedFile {
    /// The contents of the regular file at `path`, memory-mapped read-only; unmapped when the last slice goes away.
    ///
    /// The file must not be truncated by another process while mapped (reading past its new end faults).
    static func map(_ path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw WeightsError.unreadableFile(path: path, reason: systemError())
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw WeightsError.unreadableFile(path: path, reason: systemError())
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw WeightsError.unreadableFile(path: path, reason: "not a regular file")
        }
        guard info.st_size > 0 else { return Data() }
        guard let size = Int(exactly: info.st_size) else {
            throw WeightsError.unreadableFile(path: path, reason: "file too large to map")
        }
        guard let pointer = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), pointer != MAP_FAILED else {
            throw WeightsError.unreadableFile(path: path, reason: "mmap failed: \(systemError())")
        }
        return Data(bytesNoCopy: pointer, count: size, deallocator: .custom { pointer, size in
            munmap(pointer, size)
        })
    }

    /// The current `errno` as text.
    static func systemError() -> String {
        String(cString: strerror(errno))
    }
}
